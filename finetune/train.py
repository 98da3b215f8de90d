"""LoRA fine-tuning of the LLM ranker: the training loop, validation, early stopping and the output folder.

Loss: cross-entropy of the answer-position logits restricted to the K label tokens (a verbalizer, as
LlamaRec ranks). The ranker scores a candidate by its label's log-softmax among the K labels, so this
is exactly the quantity used at inference; a full-vocabulary softmax would also spend updates on
pushing down tokens the ranker never reads.

``accelerate`` places the model (CPU here; a GPU with bf16 autocast when CUDA is present) and
accumulates gradients. Validation NDCG@10 (the validation item, the retriever's top-K re-ranked) runs
at step 0 (the zero-shot model), every ``eval_every`` updates and at the end; the best adapter is kept
in the output folder, the last state in ``<out>/checkpoint`` for ``resume``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from finetune import card as cards
from finetune import checkpoint as ckpt
from finetune import data as fdata
from finetune.checkpoint import RunState
from finetune.config import LoraTrainConfig
from finetune.evaluate import (
    PromptCounter,
    answer_logits,
    blend_scores,
    blend_sweep,
    encode,
    label_token_ids,
    list_metrics,
    reranked_lists,
    retrieval_ceiling,
    run_checks,
    score_prompts,
)
from finetune.loop import TrainingLoop
from llmrec.errors import ConfigError

log = logging.getLogger(__name__)

SPLIT_DESCRIPTION = (
    "leave-one-out by timestamp (LlamaRec): last item = test, second-to-last = validation, the rest = training; "
    "training examples are (user, position) pairs inside the training items only"
)


def lr_at(step: int, cfg: LoraTrainConfig) -> float:
    """Learning rate of update ``step`` (1-based): linear warm-up, then linear decay to 10% at max_steps."""
    if cfg.warmup_steps and step <= cfg.warmup_steps:
        return cfg.learning_rate * step / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    done = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.learning_rate * (1.0 - 0.9 * done)


@dataclass
class LoraSetup:
    """The base model with fresh LoRA matrices, on the accelerator's device, with its optimizer."""

    spec: Any
    tokenizer: Any
    accelerator: Any
    model: Any
    optimizer: Any
    params: list[Any]
    context: int
    layers: list[int] | None


def build_lora(cfg: LoraTrainConfig) -> LoraSetup:
    """Prepare the registry model ``cfg.base_model`` and wrap it with LoRA as ``cfg`` says (both tasks)."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import set_seed
    from peft import LoraConfig, get_peft_model

    from llmrec.llm import get_spec, prepare_model
    from llmrec.llm.transformers_backend import load_causal_lm

    spec = get_spec(cfg.base_model)
    folder = prepare_model(cfg.base_model, cache_dir=cfg.cache_dir)
    set_seed(cfg.seed)
    base, tokenizer = load_causal_lm(folder, dtype="float32", threads=cfg.threads)
    n_layers = int(getattr(base.config, "num_hidden_layers", 0) or 0)
    layers = list(range(max(0, n_layers - cfg.lora_layers), n_layers)) if cfg.lora_layers else None
    lora = LoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(cfg.target_modules),
        layers_to_transform=layers, bias="none", task_type="CAUSAL_LM",
    )  # fmt: skip
    model = get_peft_model(base, lora)
    model.train()
    cuda = torch.cuda.is_available()
    # accelerate keeps one process-wide state; the retriever's trainer (SASRec) set it up without mixed
    # precision, and bf16 here would be refused, so start from a clean state.
    AcceleratorState._reset_state(reset_partial_state=True)
    accelerator = Accelerator(
        cpu=not cuda, mixed_precision="bf16" if cuda else "no", gradient_accumulation_steps=cfg.grad_accum
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    context = int(getattr(base.config, "max_position_embeddings", 4096) or 4096)
    return LoraSetup(spec, tokenizer, accelerator, model, optimizer, params, context, layers)


def seeded_batch(examples: Sequence[Any], micro: int, size: int, seed: int) -> list[Any]:
    """The ``micro``-th batch of ``size``: epochs over ``examples``, each in its own seeded order (resumable)."""
    n = len(examples)
    out = []
    for slot in range(micro * size, (micro + 1) * size):
        epoch, index = divmod(slot, n)
        order = np.random.default_rng([seed, epoch]).permutation(n)
        out.append(examples[int(order[index])])
    return out


def accumulated_update(tuner: Any, step: int, loss_of: Callable[[int], Any]) -> tuple[float, bool]:
    """One optimizer update of ``tuner`` (its cfg, accelerator, model, optimizer, params): ``grad_accum``
    forward/backward passes of ``loss_of(micro batch index)``, clipped. Returns the mean loss and whether the
    update was applied: one whose gradient is not finite is skipped (both bf16 runs on an H200 hit a NaN
    gradient at update 107, which AdamW would have spread into every LoRA weight)."""
    cfg = tuner.cfg
    for group in tuner.optimizer.param_groups:
        group["lr"] = lr_at(step, cfg)
    losses, applied = [], True
    for k in range(cfg.grad_accum):
        with tuner.accelerator.accumulate(tuner.model):
            loss = loss_of((step - 1) * cfg.grad_accum + k)
            tuner.accelerator.backward(loss)
            if tuner.accelerator.sync_gradients:
                norm = tuner.accelerator.clip_grad_norm_(tuner.params, cfg.grad_clip or float("inf"))
                applied = math.isfinite(float(norm))
                if not applied:
                    log.warning("update %d: the gradient is not finite (norm %s); update skipped", step, float(norm))
            if applied:
                tuner.optimizer.step()
            tuner.optimizer.zero_grad()
        losses.append(float(loss.detach()))
    return float(np.mean(losses)), applied


class FineTuner(TrainingLoop):
    """One run: data, model, loop, output. ``run()`` returns the adapter folder."""

    def __init__(self, cfg: LoraTrainConfig, out: Path, config_path: str | None = None) -> None:
        super().__init__(cfg, out, config_path)
        self.n_labels = cfg.n_candidates

    # Set-up ---------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        from llmrec.data import load_dataset, preprocess
        from llmrec.paths import resolve_cache_dir

        cfg = self.cfg
        self.dataset = load_dataset(cfg.dataset, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir)
        self.seq = preprocess(self.dataset)
        self.retriever_name = fdata.resolve_retriever(cfg.retriever)
        self.scorer = fdata.fit_retriever(
            self.seq, self.retriever_name, cfg.retriever_params, cfg.seed, resolve_cache_dir(cfg.cache_dir)
        )
        lists = self.scorer
        if cfg.retriever_folds and cfg.candidates != "random":
            lists = fdata.fit_out_of_fold(self.seq, self.retriever_name, cfg.retriever_params, cfg.seed,
                                          cfg.retriever_folds, resolve_cache_dir(cfg.cache_dir))  # fmt: skip
        self.examples = fdata.build_examples(self.seq, lists, cfg.examples, cfg.n_candidates, cfg.seed,
                                             cfg.candidates, cfg.min_history, cfg.candidate_order)  # fmt: skip
        if not self.examples:
            raise ConfigError(
                "finetune: no training example has its answer among the candidates; use candidates = 'insert'"
            )
        users = fdata.select_users(self.seq.n_users, cfg.valid_users, cfg.seed + 1)
        self.valid_cases = fdata.build_eval_cases(self.seq, self.scorer, users, "valid", cfg.n_candidates)

    def prepare_model(self) -> None:
        from llmrec.prompts import load_prompt_ref
        from llmrec.ranking import LABELS, LLMRanker

        cfg = self.cfg
        setup = build_lora(cfg)
        self.spec, self.tokenizer, self.accelerator = setup.spec, setup.tokenizer, setup.accelerator
        self.model, self.optimizer, self.params = setup.model, setup.optimizer, setup.params
        context, layers = setup.context, setup.layers
        self.labels = LABELS[: cfg.n_candidates]
        self.ranker = LLMRanker(
            PromptCounter(self.tokenizer, context, cfg.base_model), self.dataset.items, labels=self.labels,
            max_history=cfg.max_history, kind=cfg.kind, prompt=load_prompt_ref(cfg.prompt),
        )  # fmt: skip
        self.label_ids = label_token_ids(self.tokenizer, self.labels)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.valid_encoded = [encode(self.tokenizer, fdata.case_messages(self.ranker, self.seq, c))
                              for c in self.valid_cases]  # fmt: skip
        log.info("validation: %d users, %d with the target among the candidates (only those are scored)",
                 len(self.valid_cases), sum(c.target_index >= 0 for c in self.valid_cases))  # fmt: skip
        n_trainable = sum(p.numel() for p in self.params)
        log.info("LoRA r=%d on %s (%s layers): %d trainable parameters", cfg.r, ",".join(cfg.target_modules),
                 "all" if layers is None else len(layers), n_trainable)  # fmt: skip

    # Scoring --------------------------------------------------------------------------------
    def score(self, encoded: list[list[int]], adapter: bool = True, desc: str = "scoring") -> np.ndarray:
        model = self.peft_model
        context = contextlib.nullcontext() if adapter else model.disable_adapter()
        with context, self.accelerator.autocast():
            return score_prompts(model, encoded, self.label_ids, self.pad_id, self.cfg.eval_batch_size, desc)

    def metrics(self, cases: list[fdata.EvalCase], logits: np.ndarray | None) -> dict[str, Any]:
        """Metrics of the retrieval order (``logits`` None) or of the ranker at the config's blend, with a
        sweep over other blends."""
        if logits is None:
            return list_metrics(cases, reranked_lists(cases, None, self.n_labels))
        scores = blend_scores(cases, logits, self.cfg.blend)
        metrics: dict[str, Any] = list_metrics(cases, reranked_lists(cases, scores, self.n_labels))
        metrics["blend"] = self.cfg.blend
        metrics["ndcg@10_by_blend"] = blend_sweep(cases, logits)
        return metrics

    def score_cases(
        self, cases: list[fdata.EvalCase], encoded: list[list[int]], adapter: bool, desc: str
    ) -> np.ndarray:
        """Label logits per case. Cases whose target the retriever missed are not scored (zeros): every
        ordering of their candidates misses, so the metrics are exact at a fraction of the cost."""
        logits = np.zeros((len(cases), len(self.label_ids)), dtype=np.float32)
        rows = [i for i, case in enumerate(cases) if case.target_index >= 0]
        if rows:
            logits[rows] = self.score([encoded[i] for i in rows], adapter, desc)
        return logits

    def validate(self, adapter: bool = True) -> dict[str, Any]:
        return self.metrics(self.valid_cases, self.score_cases(self.valid_cases, self.valid_encoded, adapter,
                                                               "validation"))  # fmt: skip

    # Training -------------------------------------------------------------------------------
    def batch_at(self, micro: int) -> list[fdata.Example]:
        return seeded_batch(self.examples, micro, self.cfg.batch_size, self.cfg.seed)

    def train_update(self, step: int) -> tuple[float, bool]:
        """One optimizer update (``grad_accum`` forward/backward passes); the mean loss and whether it applied."""

        def loss_of(micro: int) -> Any:
            return self.example_loss(self.batch_at(micro))

        return accumulated_update(self, step, loss_of)

    def example_loss(self, batch: Sequence[fdata.Example], kl: bool = True,
                     encoded: Sequence[Sequence[int]] | None = None) -> Any:  # fmt: skip
        """Cross-entropy of the answer's label among the K labels, plus ``kl_weight`` x KL(zero-shot || adapter);
        ``encoded`` are the batch's prompt tokens when the caller has them already."""
        import torch
        from torch.nn import functional as F

        if encoded is None:
            encoded = [encode(self.tokenizer, fdata.example_messages(self.ranker, self.seq, e)) for e in batch]
        targets = torch.tensor([e.target for e in batch], dtype=torch.long)
        logits = answer_logits(self.model, encoded, self.label_ids, self.pad_id)
        loss = F.cross_entropy(logits, targets.to(logits.device))
        if kl and self.cfg.kl_weight:
            with torch.no_grad(), self.peft_model.disable_adapter():
                base = answer_logits(self.model, encoded, self.label_ids, self.pad_id)
            kl = F.kl_div(F.log_softmax(logits, -1), F.log_softmax(base, -1), log_target=True, reduction="batchmean")
            loss = loss + self.cfg.kl_weight * kl
        return loss

    def evaluate_step(self, state: RunState) -> None:
        """Validate, keep the adapter when it is the best so far (``early_stop`` reads the patience count)."""
        start = time.monotonic()
        metrics = self.validate()
        ndcg = metrics["ndcg@10"]
        state.evals.append({"step": state.step, "ndcg@10": ndcg, "recall@10": metrics["recall@10"],
                            "ndcg@10_by_blend": metrics["ndcg@10_by_blend"],
                            "seconds": round(time.monotonic() - start, 1)})  # fmt: skip
        if ndcg > state.best_metric:
            state.best_metric, state.best_step, state.bad_evals = ndcg, state.step, 0
            cards.save_adapter(self.peft_model, self.out, self.cfg.base_model)
            state.best_validation = metrics
        else:
            state.bad_evals += 1
        log.info("step %d: validation NDCG@10 %.4f (best %.4f at step %d)", state.step, ndcg, state.best_metric,
                 state.best_step)  # fmt: skip

    def evaluate_during(self, state: RunState, loss: float) -> None:
        self.evaluate_step(state)

    def early_stop(self, state: RunState) -> str:
        if self.cfg.patience and state.bad_evals >= self.cfg.patience:
            return f"early stop: no improvement in {self.cfg.patience} validations"
        return ""

    def after_loop(self, state: RunState) -> None:
        if not state.evals or state.evals[-1]["step"] != state.step:
            self.evaluate_step(state)

    # The whole run --------------------------------------------------------------------------
    def start(self, resume: bool) -> RunState:
        resumed = self.resumed_state(resume)
        if resumed is not None:
            return resumed
        state = RunState(config=self.cfg.to_dict())
        state.retriever = self.metrics(self.valid_cases, None)
        state.zero_shot = self.validate(adapter=False)
        state.best_metric, state.best_step = state.zero_shot["ndcg@10"], 0
        state.best_validation = state.zero_shot
        state.evals.append({"step": 0, "ndcg@10": state.zero_shot["ndcg@10"],
                            "recall@10": state.zero_shot["recall@10"],
                            "ndcg@10_by_blend": state.zero_shot["ndcg@10_by_blend"], "seconds": 0.0})  # fmt: skip
        cards.save_adapter(self.peft_model, self.out, self.cfg.base_model)  # LoRA at init = the zero-shot model
        log.info("zero-shot validation NDCG@10 %.4f; retriever alone %.4f", state.zero_shot["ndcg@10"],
                 state.retriever["ndcg@10"])  # fmt: skip
        return state

    def test(self, state: RunState) -> dict[str, Any] | None:
        """Test-item metrics (LlamaRec protocol) of the retriever, the zero-shot ranker, the kept adapter and,
        when they differ from it, the final weights. The weights in memory are the final ones here."""
        cfg = self.cfg
        if not cfg.test_users:
            return None
        users = fdata.select_users(self.seq.n_users, cfg.test_users, cfg.seed + 2)
        cases = fdata.build_eval_cases(self.seq, self.scorer, users, "test", cfg.n_candidates)
        encoded = [encode(self.tokenizer, fdata.case_messages(self.ranker, self.seq, c)) for c in cases]
        start = time.monotonic()
        result: dict[str, Any] = {
            "users": len(cases),
            "user_sample": "all users" if len(cases) == self.seq.n_users else f"seeded sample (seed {cfg.seed + 2})",
            "input": "training + validation items",
            "target": "the last item",
            "retriever_recall@k": round(retrieval_ceiling(cases), 6),
            "k": cfg.n_candidates,
            "scored_prompts": sum(case.target_index >= 0 for case in cases),
            "retriever": self.metrics(cases, None),
            "zero_shot": self.metrics(cases, self.score_cases(cases, encoded, False, "test zero-shot")),
        }
        if len(cases) < self.seq.n_users:
            everyone = fdata.build_eval_cases(self.seq, self.scorer, range(self.seq.n_users), "test", cfg.n_candidates)
            result["retriever_all_users"] = {"users": len(everyone), "recall@k": round(retrieval_ceiling(everyone), 6),
                                             **self.metrics(everyone, None)}  # fmt: skip
        if state.best_step != state.step:
            last = self.metrics(cases, self.score_cases(cases, encoded, True, "test last LoRA"))
            result["lora_last"] = {"step": state.step, **last}
        if state.best_step == 0:  # the kept adapter is the LoRA at initialisation (B = 0): the zero-shot model
            result["lora"] = {"step": 0, **result["zero_shot"]}
        else:
            ckpt.load_adapter_weights(self.peft_model, self.out)
            result["lora"] = {"step": state.best_step,
                              **self.metrics(cases, self.score_cases(cases, encoded, True, "test LoRA"))}  # fmt: skip
        result["seconds"] = round(time.monotonic() - start, 1)
        log.info("test NDCG@10: retriever %.4f, zero-shot %.4f, kept LoRA (step %d) %.4f (%d users)",
                 result["retriever"]["ndcg@10"], result["zero_shot"]["ndcg@10"], state.best_step,
                 result["lora"]["ndcg@10"], len(cases))  # fmt: skip
        return result

    def run(self, resume: bool = False, overrides: dict[str, int] | None = None) -> Path:
        """Train (or continue) and write the adapter folder; ``overrides`` (max_steps, test_users) were given on
        the command line and go into the card's reproduce command."""
        self.prepare_data()
        self.prepare_model()
        self.check_results = run_checks(self) if self.cfg.checks and not resume else None
        state = self.start(resume)
        self.loop(state)
        test = self.test(state)
        self.write_card(state, test, overrides or {})
        if not self.cfg.keep_checkpoint:
            ckpt.discard_checkpoint(self.out)
        return self.out

    def write_card(self, state: RunState, test: dict[str, Any] | None, overrides: dict[str, int]) -> None:
        from llmrec.adapters import best_blend

        cfg, seq = self.cfg, self.seq
        seen = state.step * cfg.grad_accum * cfg.batch_size
        dataset = {
            "name": cfg.dataset, "split": SPLIT_DESCRIPTION, **seq.stats(),
            "training_interactions": int(sum(len(seq.train(u)) for u in range(seq.n_users))),
            "candidates": cfg.candidates, **fdata.describe_examples(seq, self.examples),
            "examples_seen": seen,
        }  # fmt: skip
        steps = max(1, state.step)
        training = {
            "steps": state.step, "best_step": state.best_step, "stop_reason": state.stop_reason,
            "seconds": round(state.elapsed, 1), "train_seconds": round(state.train_seconds, 1),
            "seconds_per_step": round(state.train_seconds / steps, 2), "device": self.device_name(),
            "losses": state.losses, "evals": state.evals, "resumed_from": state.resumed_from,
            "skipped_updates": state.skipped_updates, "checks": getattr(self, "check_results", None),
        }  # fmt: skip
        validation = {
            "users": len(self.valid_cases), "input": "training items", "target": "the validation item",
            "retriever_recall@k": round(retrieval_ceiling(self.valid_cases), 6),
            "retriever": state.retriever, "zero_shot": state.zero_shot,
            "lora": state.best_validation, "lora_step": state.best_step,
            "lora_last": state.evals[-1] if state.evals and state.best_step != state.step else None,
        }  # fmt: skip
        retriever = {"name": self.retriever_name, "params": cfg.retriever_params, "fitted_on": "training items",
                     "hyperparameters": self.scorer.hyperparameters()}  # fmt: skip
        sweep = (state.best_validation or {}).get("ndcg@10_by_blend") or {}
        settings = {"prompt": self.ranker.prompt.ref, "labels": self.labels, "max_history": cfg.max_history,
                    "kind": cfg.kind, "blend": cfg.blend, "blend_validated": best_blend(sweep) if sweep else cfg.blend,
                    "candidate_order": cfg.candidate_order}  # fmt: skip
        reproduce = cards.reproduce_command(self.config_path, self.out, cfg.data_dir, overrides.get("max_steps"),
                                            overrides.get("test_users"))  # fmt: skip
        card = cards.card_for(cfg.to_dict(), self.spec, cards.VERBALIZER_LOSS, settings, reproduce, data=dataset,
                              retriever=retriever, training=training, validation=validation, test=test)  # fmt: skip
        card.write(self.out)
        log.info("adapter and card written to %s", self.out)

    def device_name(self) -> str:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
        return f"cpu ({torch.get_num_threads()} threads)"
