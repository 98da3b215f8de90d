"""Ranking past LlamaRec (issue 16): retrievers, the LLM ranker's label scores, the fused order; prints figures.

Sections (each caches what it computes under ``--work``, so a later section or a re-run costs nothing):

``retrievers``  fit each retriever variant once (neural models: on the training items, stopped on the
                validation item, as the harness's test fit does), keep its validation and test score
                matrices, print NDCG@10 / Recall@10 / Recall@20 with standard errors on both.
``ensemble``    weighted sums of retrievers' normalised scores, weights chosen on validation Recall@20.

Example (the figures in docs/benchmarks/ranking.md):

    nice -n 10 .venv/bin/python benchmarks/ranking.py retrievers --data-dir ../shared/data --work /tmp/rk \\
        --variants sasrec,sasrec-h128
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("ranking")

KS = (1, 5, 10, 20, 50)
COMMON = {"device": "cpu", "num_threads": 1}
# name -> (registry scorer, hyper-parameters); the sweep of issue 16 item 1
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "sasrec": ("sasrec", {}),
    "sasrec-ffn4": ("sasrec", {"ffn_mult": 4}),
    "sasrec-h128": ("sasrec", {"hidden": 128, "dropout": 0.3}),
    "sasrec-h128-d5": ("sasrec", {"hidden": 128, "dropout": 0.5}),
    "sasrec-h256-d5": ("sasrec", {"hidden": 256, "dropout": 0.5, "heads": 4}),
    "sasrec-lr1e-3": ("sasrec", {"learning_rate": 1e-3, "batch_size": 16}),
    "sasrec-ls": ("sasrec", {"label_smoothing": 0.1}),
    "ease": ("ease", {"l2": 50.0}),
    "itemknn": ("itemknn", {"k": 5, "similarity": "cosine"}),
    "pop": ("pop", {}),
}


def load_split(dataset: str, data_dir: str | None) -> tuple[Any, Any, Any]:
    from llmrec.data import load_dataset, preprocess
    from llmrec.evaluation.protocols import make_split

    data = load_dataset(dataset, data_dir=data_dir)
    seq = preprocess(data)
    return data, seq, make_split("loo", seq, 0)


def masked_scores(scorer: Any, cases: Any) -> np.ndarray:
    from llmrec.evaluation.protocols import mask_scores

    scores = np.array(scorer.score(cases.users, cases.histories), dtype=np.float32)
    return mask_scores(scores, cases)


def metrics_of(scores: np.ndarray, cases: Any) -> dict[str, float]:
    from llmrec.evaluation.metrics import hit_matrix, ranking_metrics, top_k

    hits = hit_matrix(top_k(scores, max(KS)), cases.targets)
    out = ranking_metrics(hits, cases.n_relevant, KS, with_se=True)
    return {k: round(v, 5) for k, v in out.items() if k.split("@")[0] in ("ndcg", "recall", "mrr")}


def _is_neural(name: str) -> bool:
    from llmrec.baselines.builtin import NEURAL

    return name in NEURAL


def retriever_scores(variant: str, split: Any, seq: Any, work: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(validation scores, test scores, info) of one variant, masked as the protocol masks; cached in ``work``.

    Neural models train once on ``split.final_train`` (the harness's test fit: each user's last input item,
    the validation item, is held out for early stopping, so the model is trained on the training items and
    scores both the validation input and the test input). Others fit on ``tune_train`` for validation and on
    ``final_train`` for test, as the harness does.
    """
    from llmrec.baselines import get_checkpointed_scorer, get_scorer

    name, params = VARIANTS[variant]
    digest = hashlib.sha256(np.concatenate(seq.sequences).astype(np.int64).tobytes()).hexdigest()[:10]
    folder = work / seq.name / "retrievers" / f"{variant}-{digest}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "valid.npy", folder / "test.npy", folder / "info.json"
    if all(p.is_file() for p in paths):
        return np.load(paths[0]), np.load(paths[1]), json.loads(paths[2].read_text())
    began = time.monotonic()
    if _is_neural(name):
        scorer = get_checkpointed_scorer(name, folder / "checkpoint", **{**COMMON, **params}).fit(split.final_train)
        valid, test = masked_scores(scorer, split.valid), masked_scores(scorer, split.test)
        extra = {"epochs": scorer.train_result_.epochs_run, "best_epoch": scorer.train_result_.best_epoch,
                 "holdout_ndcg@10": scorer.train_result_.best_metric}  # fmt: skip
    else:
        valid = masked_scores(get_scorer(name, **params).fit(split.tune_train), split.valid)
        scorer = get_scorer(name, **params).fit(split.final_train)
        test = masked_scores(scorer, split.test)
        extra = {}
    info = {"variant": variant, "model": name, "params": params, "hyperparameters": scorer.hyperparameters(),
            "seconds": round(time.monotonic() - began, 1), **extra}  # fmt: skip
    np.save(paths[0], valid)
    np.save(paths[1], test)
    paths[2].write_text(json.dumps(info, indent=1))
    return valid, test, info


def normalise(scores: np.ndarray) -> np.ndarray:
    """Per-row z-scores over the finite entries (masked items stay -inf)."""
    finite = np.isfinite(scores)
    values = np.where(finite, scores, np.nan)
    mean, std = np.nanmean(values, axis=1, keepdims=True), np.nanstd(values, axis=1, keepdims=True)
    return np.where(finite, (scores - mean) / np.maximum(std, 1e-9), -np.inf).astype(np.float32)


def ensemble_search(members: Sequence[str], split: Any, seq: Any, work: Path,
                    grid: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)) -> dict[str, Any]:  # fmt: skip
    """Weights (first member 1.0) chosen on validation Recall@20, then NDCG@10; figures on both splits."""
    import itertools

    loaded = {m: retriever_scores(m, split, seq, work) for m in members}
    valid = {m: normalise(v[0]) for m, v in loaded.items()}
    test = {m: normalise(v[1]) for m, v in loaded.items()}
    best: tuple[float, float] | None = None
    chosen: tuple[float, ...] = ()
    for weights in itertools.product(grid, repeat=len(members) - 1):
        combined = valid[members[0]] + sum(w * valid[m] for w, m in zip(weights, members[1:]))
        m = metrics_of(combined, split.valid)
        key = (m["recall@20"], m["ndcg@10"])
        if best is None or key > best:
            best, chosen = key, weights
    weights = (1.0, *chosen)
    combined_valid = sum(w * valid[m] for w, m in zip(weights, members))
    combined_test = sum(w * test[m] for w, m in zip(weights, members))
    return {"members": list(members), "weights": list(weights), "valid": metrics_of(combined_valid, split.valid),
            "test": metrics_of(combined_test, split.test)}  # fmt: skip


def row(label: str, valid: Mapping[str, float], test: Mapping[str, float]) -> str:
    def cell(m: Mapping[str, float], key: str) -> str:
        return f"{m[key]:.4f} ± {m[key + '_se']:.4f}"

    return (f"| {label} | {valid['ndcg@10']:.4f} | {valid['recall@20']:.4f} | {cell(test, 'ndcg@10')} | "
            f"{cell(test, 'recall@10')} | {cell(test, 'recall@20')} |")  # fmt: skip


HEADER = ("| retriever | valid NDCG@10 | valid R@20 | test NDCG@10 | test R@10 | test R@20 |\n"
          "|---|---|---|---|---|---|")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("section", choices=("retrievers", "ensemble"))
    p.add_argument("--dataset", default="ml-latest-small")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--work", default="/tmp/llmrec-ranking", help="cache folder for models, scores and results")
    p.add_argument("--variants", default="sasrec,ease", help=f"comma-separated, of {', '.join(VARIANTS)}")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    work = Path(args.work)
    data, seq, split = load_split(args.dataset, args.data_dir)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        print(f"error: unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    if args.section == "retrievers":
        print(HEADER)
        for variant in variants:
            valid, test, info = retriever_scores(variant, split, seq, work)
            print(row(variant, metrics_of(valid, split.valid), metrics_of(test, split.test)), info, flush=True)
    else:
        result = ensemble_search(variants, split, seq, work)
        print(HEADER)
        print(row("+".join(f"{w:g}*{m}" for w, m in zip(result["weights"], variants)), result["valid"],
                  result["test"]))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
