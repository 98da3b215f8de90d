"""LoRA fine-tuning of message reading: the app's prompt (context + message) -> the ``Reading`` JSON.

Pairs come from ``finetune.understand_data`` (ReDial's training dialogues and synthetic messages; never
the evaluation sets), each in the short prompt ``understand@2`` that the card names and the app then
uses with the adapter (the base model reads with ``understand@1``). The loss is the causal LM loss on
the answer tokens (the prompt is masked), as for the explainer. Whole ReDial dialogues and a share of
each template's messages are held out: their LM loss is logged every ``eval_every`` updates, and at the
start and the end ``valid_users`` of them are read exactly as the app reads (greedy, constrained to the
``Reading`` schema) and scored by phrase F1 (each (stance, phrase) pair, case-insensitive) and request
accuracy. The trained adapter ships when its F1 is at least the zero-shot model's; otherwise LoRA at
initialisation (the zero-shot model) and the card says so. Checkpoints and ``--resume`` work as for the
other tuners.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from finetune import card as cards
from finetune import checkpoint as ckpt
from finetune.checkpoint import RunState
from finetune.explain import encode_pair
from finetune.loop import TrainingLoop
from finetune.train import accumulated_update, build_lora, seeded_batch
from finetune.understand_data import (
    UnderstandExample,
    balance_stances,
    read_redial,
    redial_examples,
    split_examples,
    synthetic_examples,
)
from llmrec.errors import ConfigError

log = logging.getLogger(__name__)
LOSS = "causal LM cross-entropy on the answer tokens (prompt masked)"
REDIAL_TRAIN = Path("redial") / "train.jsonl.gz"
HELD_SHARE = 0.06
MAX_NEW_TOKENS = 48  # held-out readings: a right one is ~10-40 tokens; the zero-shot model can ramble to any cap


class PeftReader:
    """The ``LLM.generate_json`` the readers call, over the model being trained (same decoding as the app)."""

    def __init__(self, model: Any, tokenizer: Any, adapter: bool) -> None:
        from llmrec.llm.constrained import JsonConstraint

        self.model, self.tokenizer, self.adapter = model, tokenizer, adapter
        self.constraint = JsonConstraint(tokenizer)

    def generate_json(self, messages: Any, schema: Any, max_new_tokens: int = MAX_NEW_TOKENS) -> str:
        import torch
        from transformers import LogitsProcessorList

        from llmrec.llm.generation import GREEDY

        inputs = self.tokenizer.apply_chat_template([dict(m) for m in messages], add_generation_prompt=True,
                                                    return_tensors="pt", return_dict=True)  # fmt: skip
        inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
        processor = LogitsProcessorList([self.constraint.processor(schema)])
        context = contextlib.nullcontext() if self.adapter else self.model.disable_adapter()
        with context, torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                                      **{**GREEDY, "logits_processor": processor})  # fmt: skip
        return self.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def phrase_set(reading: Any) -> set[tuple[str, str]]:
    return {(stance, " ".join(p.lower().split())) for stance, p in reading.phrases()}


def score_readings(pairs: list[tuple[Any, Any]]) -> dict[str, float]:
    """Phrase precision / recall / F1 over (stance, phrase) pairs, and the share of exact request lists."""
    tp = fp = fn = 0
    requests = 0
    for gold, got in pairs:
        g, p = phrase_set(gold), phrase_set(got) if got is not None else set()
        tp, fp, fn = tp + len(g & p), fp + len(p - g), fn + len(g - p)
        requests += got is not None and sorted(set(got.requests)) == sorted(set(gold.requests))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"phrase_precision": round(precision, 4), "phrase_recall": round(recall, 4), "phrase_f1": round(f1, 4),
            "request_accuracy": round(requests / max(1, len(pairs)), 4)}  # fmt: skip


class UnderstandTuner(TrainingLoop):
    """One message-reading run: pairs, model, loop, output. ``run()`` returns the adapter folder."""

    bar_label = "finetune understanding"

    def prepare(self) -> None:
        from llmrec.data import load_dataset

        cfg = self.cfg
        if cfg.data_dir is None:
            raise ConfigError("finetune: task 'understand' needs --data-dir (the folder holding redial/)")
        dataset = load_dataset(cfg.dataset, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir)
        ids, counts = np.unique(dataset.interactions.item_ids, return_counts=True)
        popularity = dict(zip(ids.tolist(), counts.tolist()))
        dialogues = read_redial(Path(cfg.data_dir) / REDIAL_TRAIN)
        redial = balance_stances(redial_examples(dialogues, cfg.seed), cfg.redial_liked_only_keep, cfg.seed + 3)
        share = cfg.synthetic_share
        n_synthetic = int(cfg.examples * share / (1 - share) * 1.1) if share else 0
        synthetic = synthetic_examples(dataset.items, popularity, n_synthetic, cfg.seed + 7)
        train, held = split_examples([*redial, *synthetic], HELD_SHARE, cfg.seed + 1)
        rng = np.random.default_rng(cfg.seed)
        train_redial = [e for e in train if e.source == "redial"]
        train_synth = [e for e in train if e.source != "redial"]
        n_redial = min(len(train_redial), cfg.examples - int(cfg.examples * share))
        picked = [train_redial[i] for i in sorted(rng.choice(len(train_redial), n_redial, replace=False))]
        picked += train_synth[: cfg.examples - n_redial]
        self.examples = [picked[i] for i in rng.permutation(len(picked))]
        order = np.random.default_rng(cfg.seed + 2).permutation(len(held))
        self.valid = [held[i] for i in order[: max(cfg.valid_users, 1) * 4]]  # loss on these
        self.valid_read = [held[i] for i in order[: max(cfg.valid_users, 1)]]  # read greedily at start and end
        if not self.examples or not self.valid:
            raise ConfigError("finetune: too few message-reading pairs; raise examples")
        self.counts = {"redial_dialogues": len(dialogues), "redial_pairs": len(redial),
                       "synthetic_pairs": len(synthetic), "training_pairs": len(self.examples),
                       "training_redial": n_redial, "training_synthetic": len(self.examples) - n_redial,
                       "held_out_pairs": len(held)}  # fmt: skip
        log.info("message-reading pairs: %s", self.counts)
        setup = build_lora(cfg)
        self.spec, self.tokenizer, self.accelerator = setup.spec, setup.tokenizer, setup.accelerator
        self.model, self.optimizer, self.params = setup.model, setup.optimizer, setup.params
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    # Loss and validation --------------------------------------------------------------------------
    def batch_loss(self, batch: list[UnderstandExample]) -> Any:
        import torch

        encoded = [encode_pair(self.tokenizer, SimpleNamespace(messages=e.messages, target=e.target.compact()))
                   for e in batch]  # fmt: skip
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

    def reading(self, adapter: bool) -> dict[str, Any]:
        """The held-out messages read greedily under the schema, scored against their targets."""
        from llmrec.chat.understanding import Reading, reading_schema
        from llmrec.progress import progress_bar

        self.model.eval()
        reader = PeftReader(self.peft_model, self.tokenizer, adapter)
        schema = reading_schema()
        pairs, samples, broken = [], [], 0
        bar = progress_bar(f"read ({'LoRA' if adapter else 'zero-shot'})", total=len(self.valid_read), unit="msg")
        for e in self.valid_read:
            bar.update(1)
            raw = reader.generate_json(e.messages, schema)
            try:
                got = Reading.model_validate_json(raw)
            except ValueError:
                got, broken = None, broken + 1
            pairs.append((e.target, got))
            if len(samples) < 6:
                samples.append({"message": e.text, "target": e.target.compact(), "read": raw})
        bar.close()
        self.model.train()
        return {"messages": len(pairs), "unparsed": broken, **score_readings(pairs), "samples": samples}

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
        state.zero_shot = {"loss": round(self.valid_loss(), 5), **self.reading(adapter=False)}
        state.evals.append({"step": 0, "loss": state.zero_shot["loss"]})
        cards.save_adapter(self.peft_model, self.out, self.cfg.base_model)  # LoRA at init = the zero-shot model
        log.info("zero-shot: held-out loss %.4f, phrase F1 %.3f", state.zero_shot["loss"], state.zero_shot["phrase_f1"])
        self.save(state)
        return state

    def evaluate_during(self, state: RunState, loss: float) -> None:
        state.evals.append({"step": state.step, "loss": round(self.valid_loss(), 5)})
        log.info("step %d: loss %.4f, held-out loss %.4f", state.step, loss, state.evals[-1]["loss"])

    def finish(self, state: RunState) -> None:
        """Read the held-out messages with the final weights; keep them when they read at least as well."""
        final = {"loss": round(self.valid_loss(), 5), **self.reading(adapter=True)}
        state.best_validation = final
        if final["phrase_f1"] >= state.zero_shot["phrase_f1"] and state.step > 0:
            state.best_step = state.step
            cards.save_adapter(self.peft_model, self.out, self.cfg.base_model)
        log.info("final: held-out loss %.4f, phrase F1 %.3f (zero-shot %.3f); kept step %d", final["loss"],
                 final["phrase_f1"], state.zero_shot["phrase_f1"], state.best_step)  # fmt: skip

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
        from llmrec.chat.readers import MAX_NEW_TOKENS as READER_TOKENS
        from llmrec.chat.understanding import ADAPTER_PROMPT_VERSION, MAX_MESSAGE_IN_PROMPT, prompt_ref

        cfg = self.cfg
        # fmt: off
        settings = {"prompt": prompt_ref(ADAPTER_PROMPT_VERSION), "schema": "llmrec.chat.understanding.Reading",
                    "max_new_tokens": READER_TOKENS, "validation_max_new_tokens": MAX_NEW_TOKENS,
                    "max_message_chars": MAX_MESSAGE_IN_PROMPT}
        data = {"name": cfg.dataset, "redial": str(REDIAL_TRAIN), **self.counts,
                "examples_seen": state.step * cfg.grad_accum * cfg.batch_size,
                "excluded": "redial/dialogues.jsonl and benchmarks/data/understanding/ (evaluation sets)",
                "targets": "ReDial seekers' own seen/liked labels per mentioned movie; genre words and requests by "
                           "the chat's vocabulary where unambiguous; synthetic templates with catalogue titles"}
        training = {"steps": state.step, "kept_step": state.best_step, "stop_reason": state.stop_reason,
                    "seconds": round(state.elapsed, 1), "train_seconds": round(state.train_seconds, 1),
                    "losses": state.losses, "evals": state.evals, "resumed_from": state.resumed_from,
                    "skipped_updates": state.skipped_updates}
        reproduce = cards.reproduce_command(self.config_path, self.out, cfg.data_dir, overrides.get("max_steps"))
        card = cards.card_for(cfg.to_dict(), self.spec, LOSS, settings, reproduce, data=data, training=training,
                              validation={"zero_shot": state.zero_shot, "lora": state.best_validation})
        # fmt: on
        card.write(self.out)
        log.info("message-reading adapter and card written to %s", self.out)
