"""LoRA fine-tuning of the explainer: the explainer's prompt -> one sentence the faithfulness check passes.

Pairs come from ``finetune.explain_data`` (training split only). The loss is the causal LM loss on the
answer tokens (the prompt is masked). Validation users are held out of the pairs; at the start and the
end their explanations are generated greedily, exactly as the app does, and the share the explainer's
check keeps (``faithful``) decides what is shipped: the trained adapter when it keeps at least as many
as the zero-shot model, else the zero-shot one (LoRA at initialisation) and the card says so. The held-out
LM loss is logged every ``eval_every`` updates. Checkpoints and ``--resume`` work as for the ranker.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from finetune import card as cards
from finetune import checkpoint as ckpt
from finetune import data as fdata
from finetune.checkpoint import RunState
from finetune.explain_data import (
    ExplainExample,
    build_explain_examples,
    candidate_for,
    held_out_positions,
    training_positions,
)
from finetune.loop import TrainingLoop
from finetune.train import accumulated_update, build_lora, seeded_batch
from llmrec.errors import ConfigError

log = logging.getLogger(__name__)
LOSS = "causal LM cross-entropy on the answer tokens (prompt masked)"


class PeftGenerator:
    """The ``LLM.generate`` the explainer calls, over the model being trained (same settings as the app)."""

    def __init__(self, model: Any, tokenizer: Any, adapter: bool) -> None:
        self.model, self.tokenizer, self.adapter = model, tokenizer, adapter
        self.name, self.context_length = "training", 4096

    def generate(self, messages: Any, max_new_tokens: int = 60) -> str:
        import torch

        from llmrec.llm.generation import greedy_kwargs

        inputs = self.tokenizer.apply_chat_template([dict(m) for m in messages], add_generation_prompt=True,
                                                    return_tensors="pt", return_dict=True)  # fmt: skip
        inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
        context = contextlib.nullcontext() if self.adapter else self.model.disable_adapter()
        with context, torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id,
                                      **greedy_kwargs(inputs["input_ids"].shape[1]))  # fmt: skip
        return self.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def encode_pair(tokenizer: Any, example: ExplainExample) -> tuple[list[int], int]:
    """Token ids of prompt + answer (with the chat template's end of turn) and where the answer starts."""
    messages = [dict(m) for m in example.messages]
    prompt = list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                return_dict=True)["input_ids"])  # fmt: skip
    full = list(tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": example.target}],
                                              tokenize=True, return_dict=True)["input_ids"])  # fmt: skip
    if full[: len(prompt)] != prompt:  # a template that rewrites earlier turns: answer + end of sequence
        full = prompt + tokenizer.encode(example.target, add_special_tokens=False) + [tokenizer.eos_token_id]
    return full, len(prompt)


class ExplainTuner(TrainingLoop):
    """One explainer run: pairs, model, loop, output. ``run()`` returns the adapter folder."""

    bar_label = "finetune explainer"

    def prepare(self) -> None:
        from llmrec.data import load_dataset, preprocess
        from llmrec.explanation import LLMExplainer

        cfg = self.cfg
        self.dataset = load_dataset(cfg.dataset, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir)
        self.seq = preprocess(self.dataset)
        setup = build_lora(cfg)
        self.spec, self.tokenizer, self.accelerator = setup.spec, setup.tokenizer, setup.accelerator
        self.model, self.optimizer, self.params = setup.model, setup.optimizer, setup.params
        self.explainer = LLMExplainer(PeftGenerator(self.peft_model, self.tokenizer, True), self.dataset.items,
                                      kind=cfg.kind)  # fmt: skip
        held = [int(u) for u in fdata.select_users(self.seq.n_users, cfg.valid_users, cfg.seed + 1)]
        items, seq = self.dataset.items, self.seq
        positions = training_positions(seq, cfg.examples, cfg.seed, cfg.min_history, set(held))
        self.examples = build_explain_examples(seq, items, self.explainer, positions, cfg.seed, cfg.max_history)
        self.valid = build_explain_examples(seq, items, self.explainer, held_out_positions(seq, held), cfg.seed + 1,
                                            cfg.max_history)  # fmt: skip
        if not self.examples or not self.valid:
            raise ConfigError("finetune: too few explanation pairs; raise examples or valid_users")
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        log.info("explainer pairs: %d for training, %d held out (%d users)", len(self.examples), len(self.valid),
                 len(held))  # fmt: skip

    # Loss and validation --------------------------------------------------------------------------
    def batch_loss(self, batch: list[ExplainExample]) -> Any:
        import torch

        encoded = [encode_pair(self.tokenizer, e) for e in batch]
        width = max(len(ids) for ids, _ in encoded)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, start) in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, start : len(ids)] = torch.tensor(ids[start:])
            attention[row, : len(ids)] = 1
        device = self.accelerator.device
        out = self.model(input_ids=input_ids.to(device), attention_mask=attention.to(device), labels=labels.to(device))
        return out.loss

    def valid_loss(self) -> float:
        import torch

        self.model.eval()
        with torch.inference_mode():
            losses = [float(self.batch_loss([e])) for e in self.valid]
        self.model.train()
        return float(np.mean(losses))

    def faithfulness(self, adapter: bool) -> dict[str, Any]:
        """Greedy explanations of the held-out pairs; the share the explainer's check keeps."""
        from llmrec.progress import progress_bar

        self.model.eval()
        self.explainer.llm = PeftGenerator(self.peft_model, self.tokenizer, adapter)
        kept, samples = 0, []
        bar = progress_bar(f"explain ({'LoRA' if adapter else 'zero-shot'})", total=len(self.valid), unit="pair")
        for e in self.valid:
            bar.update(1)
            item = self.dataset.items[e.item_id]
            evidence = self.evidence_for(e)
            raw = self.explainer.llm.generate(self.explainer.messages(item, evidence), self.explainer.max_new_tokens)
            _, problems = self.explainer.check(raw, item, evidence)
            kept += not problems
            if len(samples) < 5:
                samples.append({"item": item.display_title, "text": raw.strip(), "problems": problems[:3]})
        bar.close()
        self.model.train()
        return {"pairs": len(self.valid), "faithful": kept, "faithful_share": round(kept / len(self.valid), 4),
                "samples": samples}  # fmt: skip

    def evidence_for(self, example: ExplainExample) -> Any:
        from llmrec.evidence import collect_evidence

        profile = fdata.profile_for(self.seq, example.user, example.position, self.cfg.max_history)
        return collect_evidence(profile, candidate_for(example.item_id, len(profile.history)), self.dataset.items)

    # Training ---------------------------------------------------------------------------------------
    def train_update(self, step: int) -> tuple[float, bool]:
        cfg = self.cfg
        return accumulated_update(
            self, step, lambda micro: self.batch_loss(seeded_batch(self.examples, micro, cfg.batch_size, cfg.seed))
        )

    def start(self, resume: bool) -> RunState:
        resumed = self.resumed_state(resume)
        if resumed is not None:
            return resumed
        state = RunState(config=self.cfg.to_dict())
        state.zero_shot = {"loss": round(self.valid_loss(), 5), **self.faithfulness(adapter=False)}
        state.evals.append({"step": 0, "loss": state.zero_shot["loss"]})
        cards.save_adapter(self.peft_model, self.out, self.cfg.base_model)  # LoRA at init = the zero-shot model
        log.info("zero-shot: held-out loss %.4f, faithful %d of %d", state.zero_shot["loss"],
                 state.zero_shot["faithful"], state.zero_shot["pairs"])  # fmt: skip
        return state

    def evaluate_during(self, state: RunState, loss: float) -> None:
        state.evals.append({"step": state.step, "loss": round(self.valid_loss(), 5)})
        log.info("step %d: loss %.4f, held-out loss %.4f", state.step, loss, state.evals[-1]["loss"])

    def finish(self, state: RunState) -> None:
        """Validate the final weights and keep them when they are at least as faithful as zero-shot."""
        final = {"loss": round(self.valid_loss(), 5), **self.faithfulness(adapter=True)}
        state.best_validation = final
        if final["faithful"] >= state.zero_shot["faithful"] and state.step > 0:
            state.best_step = state.step
            cards.save_adapter(self.peft_model, self.out, self.cfg.base_model)
        log.info("final: held-out loss %.4f, faithful %d of %d (zero-shot %d); kept step %d", final["loss"],
                 final["faithful"], final["pairs"], state.zero_shot["faithful"], state.best_step)  # fmt: skip

    def run(self, resume: bool = False, overrides: dict[str, int] | None = None) -> Path:
        self.prepare()
        state = self.start(resume)
        self.loop(state)
        self.finish(state)
        self.write_card(state, overrides or {})
        if not self.cfg.keep_checkpoint:
            ckpt.discard_checkpoint(self.out)
        return self.out

    def write_card(self, state: RunState, overrides: dict[str, int]) -> None:
        cfg = self.cfg
        # fmt: off
        settings = {"prompt": self.explainer.prompt.ref, "kind": cfg.kind, "max_history": cfg.max_history,
                    "max_new_tokens": self.explainer.max_new_tokens}
        data = {"name": cfg.dataset, "split": "training items only (leave-one-out by timestamp)",
                **self.seq.stats(), "pairs": len(self.examples), "held_out_pairs": len(self.valid),
                "examples_seen": state.step * cfg.grad_accum * cfg.batch_size,
                "targets": "sentences written from the evidence in several phrasings, each passing the "
                           "explainer's faithfulness check"}
        training = {"steps": state.step, "kept_step": state.best_step, "stop_reason": state.stop_reason,
                    "seconds": round(state.elapsed, 1), "train_seconds": round(state.train_seconds, 1),
                    "losses": state.losses, "evals": state.evals, "resumed_from": state.resumed_from,
                    "skipped_updates": state.skipped_updates}
        reproduce = cards.reproduce_command(self.config_path, self.out, cfg.data_dir, overrides.get("max_steps"))
        card = cards.card_for(cfg.to_dict(), self.spec, LOSS, settings, reproduce, data=data, training=training,
                              validation={"zero_shot": state.zero_shot, "lora": state.best_validation})
        # fmt: on
        card.write(self.out)
        log.info("explainer adapter and card written to %s", self.out)
