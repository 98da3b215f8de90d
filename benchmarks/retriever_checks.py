"""Three ways to a better candidate order that issue 16 left to try, measured on the sweep's cached retrievers.

Reads the validation and test score matrices that ``benchmarks/ranking.py retrievers`` caches under ``--work``
for the ensemble's members at their defaults (``lrurec``, ``sasrec``, ``ease-default``; fitted there first if
missing), fits what else it needs once (cached under ``<work>/<dataset>/checks/``), and prints:

``seeds``    LRURec fitted again with another seed: each alone, their mean, and the ensemble with the mean in
             LRURec's place (seed averaging usually gains a little: does it here?).
``clean``    LRURec and SASRec fitted on the training items with each user's last training item held out for
             early stopping, so that their validation scores are clean (the sweep's, like the harness's tuning
             fit, stop on the validation item); the ensemble's weights chosen on clean and on the sweep's
             validation, each with its test figures.
``members``  inside the ensemble's top 20, a logistic model over its members' z-scores (and the ensemble's
             rank) instead of the fixed weights: 5-fold cross-validated on validation, refitted, on test.

    nice -n 5 .venv/bin/python benchmarks/retriever_checks.py --data-dir ../shared/data --work /work/rk
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import ranking as R  # the sweep's helpers: one split, one cache, one metric code

MEMBERS = {"lrurec": "lrurec", "sasrec": "sasrec", "ease": "ease-default"}  # member -> the sweep's variant
WEIGHTS = {"lrurec": 1.0, "sasrec": 0.3, "ease": 0.1}  # the ensemble scorer's defaults


def refit(kind: str, model: str, split: Any, seq: Any, work: Path) -> np.ndarray:
    """Validation (``clean``) or test (``seed1``) scores of ``model`` at its registry defaults, cached."""
    from llmrec.baselines import get_checkpointed_scorer, get_scorer

    hyper = get_scorer(model, **R.COMMON).hyperparameters()
    data = R.data_digest(seq)
    folder = work / seq.name / "checks" / f"{model}-{kind}"
    info = {"model": model, "kind": kind, "data": data, "hyperparameters": hyper}
    saved, scores = folder / "info.json", folder / "scores.npy"
    if saved.is_file() and scores.is_file() and json.loads(saved.read_text()) == info:
        return np.load(scores)
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "clean":  # the training items only, stopped on each user's last training item
        train, cases = dataclasses.replace(split.tune_train, validation=None), split.valid
    else:  # the sweep's fit (training items, stopped on the validation item) with seed 1
        train, cases = split.final_train.with_seed(1), split.test
    scorer = get_checkpointed_scorer(model, folder / "checkpoint", **R.COMMON).fit(train)
    out = R.masked_scores(scorer, cases)
    np.save(scores, out)
    saved.write_text(json.dumps(info, indent=1))
    return out


def figures(scores: np.ndarray, cases: Any) -> str:
    m = R.metrics_of(scores, cases)
    return f"{m['ndcg@10']:.4f} / {m['recall@10']:.4f} / {m['recall@20']:.4f}"


def seeds(valid: dict, test: dict, extra: np.ndarray, split: Any) -> None:
    second = R.normalise(extra)
    mean = (test["lrurec"] + second) / 2
    print("seeds (test NDCG@10 / R@10 / R@20):")
    print(f"  LRURec seed 0 {figures(test['lrurec'], split.test)}; seed 1 {figures(second, split.test)}; "
          f"their mean {figures(mean, split.test)}")  # fmt: skip
    print(f"  ensemble {figures(R.weighted(test, WEIGHTS), split.test)}; with the mean as its LRURec "
          f"{figures(R.weighted({**test, 'lrurec': mean}, WEIGHTS), split.test)}")  # fmt: skip


def clean(valid: dict, clean_valid: dict, test: dict, split: Any) -> None:
    print("clean validation (valid, then test: NDCG@10 / R@10 / R@20):")
    for name, z in (("LRURec", "lrurec"), ("SASRec", "sasrec")):
        print(f"  {name} valid: sweep's {figures(valid[z], split.valid)}, clean {figures(clean_valid[z], split.valid)}")
    for label, v in (("sweep's validation", valid), ("clean validation", clean_valid)):
        weights = R.search_weights(v, list(MEMBERS), split.valid)  # as the sweep's ensemble section chooses
        print(f"  weights on the {label}: 1 / {weights['sasrec']:g} / {weights['ease']:g}; valid "
              f"{figures(R.weighted(v, weights), split.valid)}; test {figures(R.weighted(test, weights), split.test)}")


def windows(z: dict[str, np.ndarray], cases: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per user: (features of the ensemble's top 20: member z-scores, ensemble rank; target indicator)."""
    ensemble = R.weighted(z, WEIGHTS)
    top = np.argsort(-ensemble, axis=1, kind="stable")[:, :20]
    out = []
    for row, cand in enumerate(top):
        features = np.stack([*(z[m][row, cand] for m in MEMBERS), 1.0 / (1.0 + np.arange(20))], axis=1)
        out.append((features, (cand == int(cases.targets[row][0])).astype(int)))
    return out


def window_figures(scores: list[np.ndarray], labels: list[np.ndarray]) -> str:
    """NDCG@10 / R@10 over all users by the fusion section's metric (a user whose target is not in the window: 0)."""
    held = [(s, {"features": s, "target": int(np.argmax(y))}) for s, y in zip(scores, labels) if y.any()]
    m = R.window_metrics([w for _, w in held], [s for s, _ in held], len(labels))
    return f"{m['ndcg@10']:.5f} / {m['recall@10']:.5f}"  # as window_metrics rounds them (no second rounding)


def logistic(part: list[tuple[np.ndarray, np.ndarray]], cols: tuple[int, ...], c: float) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([f[:, cols] for f, _ in part])
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(
        x, np.concatenate([y for _, y in part]))


def members(valid_sets: dict[str, dict], test: dict, split: Any) -> None:
    print("members (NDCG@10 / R@10 over all users; the logistic order only moves the ensemble's top 20):")
    tw = windows(test, split.test)
    print(f"  fixed weights: test {window_figures([-np.arange(20.0)] * len(tw), [y for _, y in tw])}")
    for label, valid in valid_sets.items():
        vw = windows(valid, split.valid)
        print(f"  fixed weights, {label}: valid {window_figures([-np.arange(20.0)] * len(vw), [y for _, y in vw])}")
        for cols, name in (((0, 1, 2), "member z-scores"), ((0, 1, 2, 3), "member z-scores + rank")):
            for c in (0.01, 0.1, 1.0):
                folds = np.array_split(np.random.default_rng(0).permutation(len(vw)), 5)
                cv: list[np.ndarray] = [np.zeros(20)] * len(vw)
                for k, fold in enumerate(folds):
                    fitted = logistic([vw[i] for j, f in enumerate(folds) if j != k for i in f], cols, c)
                    for i in fold:
                        cv[i] = fitted.decision_function(vw[i][0][:, cols])
                fitted = logistic(vw, cols, c)
                ts = [fitted.decision_function(f[:, cols]) for f, _ in tw]
                print(f"  {name}, C {c:g}, {label}: CV {window_figures(cv, [y for _, y in vw])}; "
                      f"test {window_figures(ts, [y for _, y in tw])}")  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="ml-latest-small")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--work", default="/tmp/llmrec-ranking", help="the sweep's cache folder (benchmarks/ranking.py)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    work = Path(args.work)
    _, seq, split = R.load_split(args.dataset, args.data_dir)
    loaded = {m: R.retriever_scores(v, split, seq, work) for m, v in MEMBERS.items()}
    valid = {m: R.normalise(v[0]) for m, v in loaded.items()}
    test = {m: R.normalise(v[1]) for m, v in loaded.items()}
    clean_valid = {**valid, **{m: R.normalise(refit("clean", m, split, seq, work)) for m in ("lrurec", "sasrec")}}
    seeds(valid, test, refit("seed1", "lrurec", split, seq, work), split)
    clean(valid, clean_valid, test, split)
    members({"sweep's validation": valid, "clean validation": clean_valid}, test, split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
