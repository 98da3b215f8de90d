"""Scoring prompts with the model being trained, and ranking metrics over evaluation cases.

``answer_logits`` is the forward pass of ``TransformersLLM.score_options_batch`` (chat template with
the generation prompt, left padding, the logits of the last position read at each label's token), so
what training optimises and validation measures is what the ranker scores at inference. Metrics use
``llmrec.evaluation.metrics`` on the re-ranked top-K lists: a target outside the retriever's top-K is
a miss for every ranker, so NDCG@10/Recall@10 are comparable to full-ranking numbers (LlamaRec).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from llmrec.llm.base import Messages

if TYPE_CHECKING:
    from finetune.data import EvalCase

log = logging.getLogger(__name__)

KS = (1, 5, 10, 20)
BLENDS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98)  # LLMRanker.blend values every evaluation also reports


class PromptCounter:
    """The two members ``LLMRanker.messages`` needs from an LLM (token counting, context length)."""

    def __init__(self, tokenizer: Any, context_length: int, name: str = "prompt-counter") -> None:
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.name = name

    def count_tokens(self, messages: Messages) -> int:
        return len(encode(self.tokenizer, messages))


def encode(tokenizer: Any, messages: Messages) -> list[int]:
    """Token ids of the chat prompt with the assistant turn opened, as ``TransformersLLM`` encodes it."""
    encoded = tokenizer.apply_chat_template(
        [dict(m) for m in messages], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    return encoded["input_ids"][0].tolist()


def label_token_ids(tokenizer: Any, labels: Sequence[str]) -> list[int]:
    """The single token of each label (``TransformersLLM.option_token_id``)."""
    from llmrec.errors import ConfigError

    out = []
    for label in labels:
        ids = tokenizer.encode(label, add_special_tokens=False)
        if len(ids) != 1:
            raise ConfigError(f"label {label!r} is {len(ids)} tokens for this tokenizer; use single-token labels")
        out.append(ids[0])
    return out


def answer_logits(model: Any, batch: Sequence[Sequence[int]], label_ids: Sequence[int], pad_id: int) -> Any:
    """(len(batch), len(label_ids)) logits at the answer position; gradients flow unless the caller disables them."""
    import torch

    width = max(len(tokens) for tokens in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, tokens in enumerate(batch):
        input_ids[row, width - len(tokens) :] = torch.as_tensor(tokens, dtype=torch.long)
        attention[row, width - len(tokens) :] = 1
    device = next(model.parameters()).device
    out = model(input_ids=input_ids.to(device), attention_mask=attention.to(device), logits_to_keep=1)
    return out.logits[:, -1, :].float()[:, list(label_ids)]


def score_prompts(
    model: Any, encoded: Sequence[Sequence[int]], label_ids: Sequence[int], pad_id: int, batch_size: int = 4,
    desc: str = "scoring",
) -> np.ndarray:  # fmt: skip
    """Label logits for many prompts, in batches of similar length (less padding); eval mode, no gradients."""
    import torch

    from llmrec.progress import progress

    was_training = model.training
    model.eval()
    out = np.zeros((len(encoded), len(label_ids)), dtype=np.float32)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    starts = range(0, len(order), batch_size)
    try:
        with torch.inference_mode():
            for start in progress(starts, desc=desc, total=len(starts), unit="batch"):
                rows = order[start : start + batch_size]
                logits = answer_logits(model, [encoded[i] for i in rows], label_ids, pad_id)
                out[rows] = logits.cpu().numpy()
    finally:
        model.train(was_training)
    return out


# Metrics --------------------------------------------------------------------------------------
def reranked_lists(cases: Sequence[EvalCase], scores: Sequence[np.ndarray] | None, width: int) -> np.ndarray:
    """(n, width) dense ids: each case's candidates ordered by its scores (None = retrieval order); ties keep
    the retrieval order; -1 pads."""
    ranked = np.full((len(cases), width), -1, dtype=np.int64)
    for row, case in enumerate(cases):
        candidates = np.asarray(case.candidates, dtype=np.int64)
        if scores is not None and len(candidates):
            candidates = candidates[np.argsort(-np.asarray(scores[row])[: len(candidates)], kind="stable")]
        ranked[row, : len(candidates[:width])] = candidates[:width]
    return ranked


def list_metrics(cases: Sequence[EvalCase], ranked: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    """NDCG/Recall/MRR@k averaged over the cases (one relevant item each), with standard errors."""
    from llmrec.evaluation.metrics import hit_matrix, ranking_metrics

    if not cases:
        return {}
    targets = [np.array([c.target_item]) for c in cases]
    hits = hit_matrix(ranked, targets)
    metrics = ranking_metrics(hits, np.ones(len(cases)), ks, with_se=True)
    keep = {f"{m}@{k}" for m in ("ndcg", "recall", "mrr") for k in ks}
    return {key: round(value, 6) for key, value in metrics.items() if key.removesuffix("_se") in keep}


def blend_scores(cases: Sequence[EvalCase], logits: np.ndarray, blend: float) -> list[np.ndarray]:
    """``LLMRanker``'s ranking score per case: the log-softmax over the window's label logits, mixed with the
    retrieval rank's reciprocal-rank term when ``blend`` > 0 (the ranker's formula)."""
    out = []
    for case, row in zip(cases, np.asarray(logits, dtype=np.float64)):
        n = len(case.candidates)
        shifted = row[:n] - row[:n].max() if n else row[:0]
        logprobs = shifted - np.log(np.exp(shifted).sum()) if n else shifted
        if blend:
            logprobs = (1 - blend) * logprobs + blend * np.log(1.0 / (60.0 + np.arange(1, n + 1)))
        out.append(logprobs)
    return out


def blend_sweep(cases: Sequence[EvalCase], logits: np.ndarray, blends: Sequence[float] = BLENDS) -> dict[str, float]:
    """NDCG@10 of the ranker at each blend, keyed by the blend written as ``%g``."""
    width = max((len(c.candidates) for c in cases), default=0)
    out = {}
    for b in blends:
        ranked = reranked_lists(cases, blend_scores(cases, logits, b), width)
        out[f"{b:g}"] = list_metrics(cases, ranked, ks=(10,))["ndcg@10"]
    return out


def evaluate_scores(
    cases: Sequence[EvalCase], score: Callable[[Sequence[EvalCase]], np.ndarray] | None, width: int
) -> dict[str, float]:
    """Metrics of ``score`` (cases -> (n, width) logits) or of the retrieval order when ``score`` is None."""
    scores = None if score is None else score(cases)
    return list_metrics(cases, reranked_lists(cases, scores, width))


def retrieval_ceiling(cases: Sequence[EvalCase]) -> float:
    """Share of cases whose target was retrieved: Recall@K of the retriever, the most any re-ranker reaches."""
    return float(np.mean([c.target_index >= 0 for c in cases])) if cases else 0.0


# Checks before a long run (issue 16) -----------------------------------------------------------
CHECK_EXAMPLES = 64


def target_letter_errors(ranker: Any, seq: Any, examples: Sequence[Any]) -> list[str]:
    """Examples whose target letter does not label the true item in the prompt as shown (empty = all correct):
    the line that starts with the target's label must name the item the user chose next in the data
    (``seq.train(user)[position]``), and no other candidate line may."""
    from finetune.data import example_messages
    from llmrec.safety import fence

    errors = []
    for e in examples:
        text = example_messages(ranker, seq, e)[-1]["content"]
        truth = int(seq.train(e.user)[e.position])
        title = fence(ranker.items[seq.item_ids[truth]].display_title, 120)
        label = ranker.labels[e.target]
        lines = [line for line in text.splitlines() if line[:1] in ranker.labels and line[1:2] in ".):"]
        labelled = [line for line in lines if line.startswith(label) and title in line]
        others = [line for line in lines if not line.startswith(label) and f" {title}" in line]
        if len(labelled) != 1 or others:
            errors.append(f"user {e.user} position {e.position}: label {label} does not show {title!r} alone")
    return errors


def prompt_identity_errors(ranker: Any, seq: Any, cases: Sequence[Any]) -> list[str]:
    """Cases whose training-side prompt differs from the prompt the evaluation pipeline shows the ranker for the
    same user, history and candidates (``llmrec.evaluation.rerank.RerankPipeline``); empty = identical."""
    from finetune.data import case_messages
    from llmrec.evaluation.rerank import RerankPipeline
    from llmrec.types import Candidate

    pipeline = RerankPipeline("pop", None, seq.item_ids, ranker.items, seq.ratings)
    errors = []
    for case in cases:
        history = seq.sequences[case.user][: case.history_length]
        window = [Candidate(seq.item_ids[i], 0.0, ("retriever",)) for i in case.candidates]
        if ranker.messages(pipeline.profile(case.user, history), window) != case_messages(ranker, seq, case):
            errors.append(f"user {case.user} ({case.split}): the training prompt differs from the inference prompt")
    return errors


def order_vs_random(logits: np.ndarray, targets: Sequence[int]) -> dict[str, float]:
    """Mean reciprocal rank of the targets under ``logits`` (ties to the earlier label) against a uniformly random
    order of the same lists, with the z statistic of the difference (exact null mean and variance)."""
    logits = np.asarray(logits, dtype=np.float64)
    k = logits.shape[1]
    ranks = np.array([int((row > row[t]).sum() + (row[:t] == row[t]).sum()) for row, t in zip(logits, targets)])
    rr = 1.0 / (1.0 + ranks)
    null = 1.0 / np.arange(1, k + 1)
    mu, sd = null.mean(), null.std()
    z = (rr.mean() - mu) / (sd / np.sqrt(len(rr))) if len(rr) else 0.0
    return {"n": len(rr), "mrr": round(float(rr.mean()), 4), "random_mrr": round(float(mu), 4), "z": round(float(z), 2)}


def overfit(tuner: Any, examples: Sequence[Any], epochs: int = 30, lr: float = 2e-3, target: float = 0.1,
            batch_size: int = 8) -> dict[str, Any]:  # fmt: skip
    """Train the adapter on ``examples`` alone until their mean loss is under ``target`` (or ``epochs`` run out),
    then put the adapter's weights back as they were: a training set this small must be learnt by heart, or the
    labels, the prompts or the loss are broken. The curve holds each epoch's mean training loss; the last value
    is the loss of all examples in eval mode once the training loss is under ``target``."""
    import torch

    from finetune.data import example_messages

    model = tuner.peft_model
    saved = [p.detach().clone() for p in tuner.params]  # the trained weights (the adapter's), put back at the end
    tokens = [encode(tuner.tokenizer, example_messages(tuner.ranker, tuner.seq, e)) for e in examples]

    def loss_of(rows: Sequence[int]) -> Any:
        return tuner.example_loss([examples[i] for i in rows], kl=False, encoded=[tokens[i] for i in rows])

    optimizer = torch.optim.AdamW(tuner.params, lr=lr)
    rng = np.random.default_rng(0)
    curve: list[float] = []
    passed = False
    try:
        for _ in range(epochs):
            model.train()
            order, losses = rng.permutation(len(examples)), []
            for start in range(0, len(order), batch_size):
                loss = loss_of(order[start : start + batch_size])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            curve.append(round(float(np.mean(losses)), 4))
            if curve[-1] < target:
                model.eval()
                with torch.no_grad():
                    final = [float(loss_of(range(s, min(s + batch_size, len(examples)))))
                             for s in range(0, len(examples), batch_size)]  # fmt: skip
                curve.append(round(float(np.mean(final)), 4))
                passed = curve[-1] < target
                if passed:
                    break
    finally:
        with torch.no_grad():
            for param, value in zip(tuner.params, saved):
                param.copy_(value)
        optimizer.zero_grad(set_to_none=True)
        model.train()
    return {"examples": len(examples), "epochs": len(curve), "loss_curve": curve, "target": target, "passed": passed}


def run_checks(tuner: Any, n: int = CHECK_EXAMPLES, overfit_epochs: int = 30) -> dict[str, Any]:
    """The four checks a ranker run must pass before it trains (issue 16): target letters, identical training and
    inference prompts, a zero-shot order better than random on training lists, and overfitting ``n`` prompts.
    Raises ``ConfigError`` naming the first that fails; returns the figures for the card."""
    from finetune.data import example_messages
    from llmrec.errors import ConfigError

    examples = list(tuner.examples[:n])
    letters = target_letter_errors(tuner.ranker, tuner.seq, tuner.examples)
    if letters:
        raise ConfigError(f"finetune check: {len(letters)} training examples have the wrong target letter; first: "
                          f"{letters[0]}")  # fmt: skip
    identity = prompt_identity_errors(tuner.ranker, tuner.seq, tuner.valid_cases)
    if identity:
        raise ConfigError(f"finetune check: {identity[0]}")
    encoded = [encode(tuner.tokenizer, example_messages(tuner.ranker, tuner.seq, e)) for e in examples]
    zero_shot = order_vs_random(tuner.score(encoded, adapter=False, desc="check: zero-shot"),
                                [e.target for e in examples])  # fmt: skip
    if zero_shot["z"] < 1.645:  # one-sided 5 %
        raise ConfigError(f"finetune check: the zero-shot order is not better than random on {zero_shot['n']} "
                          f"training lists (MRR {zero_shot['mrr']} vs {zero_shot['random_mrr']}, z {zero_shot['z']})")
    fitted = overfit(tuner, examples, epochs=overfit_epochs)
    if not fitted["passed"]:
        raise ConfigError(f"finetune check: {n} training prompts were not overfitted (loss {fitted['loss_curve'][-1]} "
                          f"after {fitted['epochs']} epochs, want < {fitted['target']})")  # fmt: skip
    log.info("checks passed: target letters, prompt identity, zero-shot %s, overfit %s", zero_shot, fitted)
    return {"target_letters": f"{len(tuner.examples)} examples correct",
            "prompt_identity": f"{len(tuner.valid_cases)} validation prompts identical",
            "zero_shot_vs_random": zero_shot, "overfit": fitted}  # fmt: skip
