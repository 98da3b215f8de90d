"""Popularity around the user's own time as a re-ranking signal over the retriever's 20 (issue 16; measured).

MovieLens users rate in bursts, and what others rated in the weeks before a user's last rating is a signal no
sequence model sees directly (they see orders, not dates). For each user the retriever's top 20 are re-scored as
``z(retrieval score) + w * z(log(1 + n))``, where ``n`` counts the candidate's ratings by anyone in the ``W`` days up
to the user's last input rating (``W = 0``: all of them) — only ratings in the retriever's own fit data and none
after that moment, so nothing from the future or from held-out items enters.

Validation windows come from the test-time retriever scored on the validation input (the shipped checkpoint; its
neural members early-stopped on the validation item, so validation is optimistic for the retriever itself, which
favours ``w = 0``); ``w`` and ``W`` are chosen on validation and test is read to report them.

    .venv/bin/python benchmarks/time_popularity.py --data-dir ../shared/data [--retriever ensemble5]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ranking import load_split, masked_scores

from llmrec.baselines.ensemble import standardise

DAY = 86_400


def rating_times(sequences: Sequence[np.ndarray], stamps: Sequence[np.ndarray], drop: int) -> dict[int, np.ndarray]:
    """Item -> sorted timestamps of its ratings in the fit data (each user's last ``drop`` ratings held out)."""
    items = np.concatenate([s[: len(s) - drop] for s in sequences])
    times = np.concatenate([t[: len(t) - drop] for t in stamps])
    order = np.lexsort((times, items))
    items, times = items[order], times[order]
    cuts = np.flatnonzero(np.diff(items)) + 1
    return {int(chunk[0]): when for chunk, when in zip(np.split(items, cuts), np.split(times, cuts))}


def recent_counts(times: Mapping[int, np.ndarray], items: Sequence[int], moment: int, days: int) -> np.ndarray:
    """Ratings of each item in the ``days`` up to ``moment`` included (``days = 0``: all up to ``moment``)."""
    none = np.array([], dtype=np.int64)
    start = moment - days * DAY if days else np.iinfo(np.int64).min
    counts = []
    for item in items:
        when = times.get(int(item), none)
        counts.append(np.searchsorted(when, moment, side="right") - np.searchsorted(when, start, side="right"))
    return np.array(counts, dtype=float)


def windows(scorer: Any, cases: Any, seq: Any, drop: int, days: Sequence[int]) -> list[dict[str, Any]]:
    """Per user: the top 20's retrieval scores, their recent counts per window and the target's position (or -1)."""
    scores = masked_scores(scorer, cases)
    times = rating_times(seq.sequences, seq.timestamps, drop)
    out = []
    for row, user in enumerate(cases.users):
        top = np.argsort(-scores[row], kind="stable")[:20]
        moment = int(seq.timestamps[user][len(seq.timestamps[user]) - drop - 1])  # the last input rating
        hit = np.flatnonzero(top == int(cases.targets[row][0]))
        out.append({"scores": scores[row][top].astype(float), "target": int(hit[0]) if len(hit) else -1,
                    "counts": {d: recent_counts(times, top, moment, d) for d in days}})  # fmt: skip
    return out


def figures(rows: Sequence[Mapping[str, Any]], days: int, weight: float) -> tuple[float, float]:
    """NDCG@10 and Recall@10 over all users of the re-scored order (ties keep the retrieval order)."""
    ndcg = hits = 0.0
    for r in rows:
        if r["target"] < 0:
            continue
        retrieval, recent = standardise(np.vstack([r["scores"], np.log1p(r["counts"][days])]))
        fused = retrieval + weight * recent
        order = np.argsort(-fused, kind="stable")
        rank = int(np.flatnonzero(order == r["target"])[0])
        if rank < 10:
            ndcg, hits = ndcg + 1 / np.log2(rank + 2), hits + 1
    return ndcg / len(rows), hits / len(rows)


def main(argv: Sequence[str] | None = None) -> int:
    from llmrec.evaluation.rerank import fit_retriever
    from llmrec.paths import resolve_cache_dir

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="ml-latest-small")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--retriever", default="ensemble5", help="registry scorer (its shipped checkpoint, if any)")
    p.add_argument("--days", default="7,30,90,365,0", help="windows in days (0: every earlier rating)")
    p.add_argument("--weights", default="0,0.05,0.1,0.2,0.3,0.5")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    days = [int(d) for d in args.days.split(",")]
    weights = [float(w) for w in args.weights.split(",")]
    _, seq, split = load_split(args.dataset, args.data_dir)
    scorer = fit_retriever(args.retriever, split.final_train, cache_dir=resolve_cache_dir(None))
    valid, test = windows(scorer, split.valid, seq, 2, days), windows(scorer, split.test, seq, 1, days)
    print("| window (days) | w | valid NDCG@10 | valid R@10 | test NDCG@10 | test R@10 |\n|---|---|---|---|---|---|")
    table = {}
    for d in days:
        for w in weights:
            table[d, w] = figures(valid, d, w), figures(test, d, w)
            (vn, vr), (tn, tr) = table[d, w]
            print(f"| {d or 'all'} | {w:g} | {vn:.4f} | {vr:.4f} | {tn:.4f} | {tr:.4f} |")
    best = max(table, key=lambda k: (table[k][0][0], -k[1]))
    print(f"chosen on validation NDCG@10: window {best[0] or 'all'} days, w {best[1]:g}; test "
          f"{table[best][1][0]:.4f} / {table[best][1][1]:.4f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
