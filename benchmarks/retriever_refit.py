"""The ensemble's networks refitted on every fit item (issue 16, point 1): measured over five seeds on each split.

A neural retriever here is trained with each user's last fit item held out for early stopping, so that item is
never a training target: at test time the validation item (each user's most recent known interaction) only
serves to choose the epoch. The usual practice with early stopping is to train once more from the start on all
the data for the number of epochs validation chose. This measures it for the ensemble (LRURec 1, SASRec 0.3,
EASE 0.1 on per-user z-scores, each network averaged over its seeded copies, as ``ensemble5`` does):

``holdout``  each copy as the pipeline fits it (stopped on the held-out item; the best epoch's weights).
``refit``    each copy trained again from its seed on every fit item for the hold-out fit's best epoch count.
``mixed``    both, averaged as ten copies per network (twice the training).

The members and weights are the registry ensemble's (``EnsembleConfig``); its deterministic members are fitted once.

``--side valid``: fitted on the training items, scored on the validation item (the fusion's clean validation fit,
docs/benchmarks/ranking.md 9.1). ``--side test``: fitted on training + validation items, scored on the test item;
the hold-out copies are the ones that ship (``finetune/retrievers``), so only the refits train. Choices are made
on ``valid``; ``test`` is read to report them. One thread per fit; score matrices cached under
``<work>/<dataset>/refit/``.

    B="nice -n 5 .venv/bin/python benchmarks/retriever_refit.py --data-dir ../shared/data --work /work/rk"
    for m in lrurec sasrec; do ($B --member $m --side valid && $B --member $m --side test) & done; wait
    $B                                                                   # the tables
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import ranking as R  # one split, one metric code with the sweep

from llmrec.baselines.builtin import NEURAL
from llmrec.baselines.ensemble import EnsembleConfig

log = logging.getLogger("retriever_refit")
_ENSEMBLE = dict(zip(EnsembleConfig.members, EnsembleConfig.weights))  # the registry ensemble's members and weights
NETWORKS = tuple(m for m in _ENSEMBLE if m in NEURAL)  # lrurec, sasrec: refitted
OTHERS = tuple(m for m in _ENSEMBLE if m not in NEURAL)  # ease: deterministic, fitted once
KINDS = ("holdout", "refit", "mixed")


def tag(member: str, copy: int) -> str:
    return member + (f"-seed{copy}" if copy else "")  # Ensemble's folder names for its seeded copies


def fit_side(side: str, split: Any) -> tuple[Any, Any]:
    """(fit data, cases) of one side."""
    if side == "valid":
        return dataclasses.replace(split.tune_train, validation=None), split.valid
    return split.final_train, split.test


def shipped_holdout(split: Any, cache: Path) -> Path | None:
    """The cache folder of the shipped test-time ``ensemble5`` (installed from llmrec when absent), or None."""
    from llmrec.evaluation.rerank import retriever_folder
    from llmrec.evaluation.shipped_retrievers import install_shipped

    folder = retriever_folder("ensemble5", split.final_train, None, cache)
    install_shipped(folder)
    return folder if folder.is_dir() else None


def train(member: str, side: str, seeds: int, split: Any, out: Path, cache: Path | None, refit: bool = True,
          **params: Any) -> None:  # fmt: skip
    """Fit and score the hold-out and (``refit``) the refitted copy of ``member`` for each seed (cached). ``params``:
    the network's settings (its registry defaults when none, the figures' setting); ``cache`` None: no shipped copy."""
    from llmrec.baselines import get_scorer

    data, cases = fit_side(side, split)
    ships = side == "test" and cache is not None and not params and member in NETWORKS  # a shipped ensemble5 copy
    shipped = shipped_holdout(split, cache) if ships else None
    for copy in range(seeds):
        name = tag(member, copy)
        files = {kind: out / f"{side}-{kind}-{name}.npy" for kind in ("holdout", "refit") if refit or kind == "holdout"}
        if all(f.is_file() for f in files.values()):
            continue
        fit = dataclasses.replace(data, seed=data.seed + copy) if copy else data
        began = time.monotonic()
        folder = shipped / name if shipped is not None else out / side / "holdout" / name
        held = get_scorer(member, **params, checkpoint_dir=str(folder), resume=True).fit(fit)
        best = held.train_result_.best_epoch
        np.save(files["holdout"], np.asarray(held.score(cases.users, cases.histories), dtype=np.float32))
        log.info("%s %s hold-out fit: best epoch %d (%.0f s)", side, name, best, time.monotonic() - began)
        if not refit:
            continue
        began = time.monotonic()
        refit = get_scorer(member, **{**params, "holdout": False, "epochs": best, "patience": 0},
                           checkpoint_dir=str(out / side / "refit" / name), resume=True).fit(fit)  # fmt: skip
        np.save(files["refit"], np.asarray(refit.score(cases.users, cases.histories), dtype=np.float32))
        log.info("%s %s refit: %d epochs on every item (%.0f s)", side, name, best, time.monotonic() - began)


def member_z(member: str, side: str, kind: str, k: int, out: Path) -> np.ndarray | None:
    """``member``'s z-scores averaged over its first ``k`` copies of ``kind`` (None when one is missing)."""
    from llmrec.baselines.ensemble import seed_average, standardise

    kinds = ("holdout", "refit") if kind == "mixed" else (kind,)
    paths = [out / f"{side}-{kk}-{tag(member, c)}.npy" for c in range(k) for kk in kinds]
    if not all(p.is_file() for p in paths):
        return None
    return seed_average([standardise(np.load(p)) for p in paths])


def fixed_z(side: str, split: Any, out: Path) -> dict[str, np.ndarray]:
    """The deterministic members' z-scores on ``side``, each fitted once and cached."""
    from llmrec.baselines import get_scorer
    from llmrec.baselines.ensemble import standardise

    data, cases = fit_side(side, split)
    fixed = {}
    for member in OTHERS:
        path = out / f"{side}-{member}.npy"
        if not path.is_file():
            np.save(path, np.asarray(get_scorer(member).fit(data).score(cases.users, cases.histories), np.float32))
        fixed[member] = standardise(np.load(path))
    return fixed


def report(side: str, seeds: int, split: Any, out: Path) -> list[str]:
    """Table rows: the ensemble and LRURec alone, per kind and number of seeds."""
    from llmrec.evaluation.protocols import mask_scores

    _, cases = fit_side(side, split)
    fixed = fixed_z(side, split, out)  # the same in every row
    rows = []
    for kind in KINDS:
        for k in range(1, seeds + 1):
            z = {m: member_z(m, side, kind, k, out) for m in NETWORKS}
            if any(v is None for v in z.values()):
                continue
            total = R.weighted({**z, **fixed}, _ENSEMBLE)
            ens = R.metrics_of(mask_scores(np.asarray(total, np.float32), cases), cases)
            lru = R.metrics_of(mask_scores(np.asarray(z["lrurec"], np.float32), cases), cases)
            rows.append(f"| {side} | {kind} | {k} | {ens['ndcg@10']:.4f} ± {ens['ndcg@10_se']:.4f} | "
                        f"{ens['recall@10']:.4f} | {ens['recall@20']:.4f} | {lru['ndcg@10']:.4f} | "
                        f"{lru['recall@10']:.4f} |")  # fmt: skip
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="ml-latest-small")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--work", required=True, help="cache folder for the runs")
    p.add_argument("--cache-dir", default=None, help="llmrec's cache (the shipped hold-out copies are installed "
                   "there); default: the configured one")  # fmt: skip
    p.add_argument("--member", choices=NETWORKS, help="train this network's copies (else: print the tables)")
    p.add_argument("--side", choices=("valid", "test"), default="valid")
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from llmrec.paths import resolve_cache_dir

    _, seq, split = R.load_split(args.dataset, args.data_dir)
    out = Path(args.work) / seq.name / "refit"
    out.mkdir(parents=True, exist_ok=True)
    if args.member:
        train(args.member, args.side, args.seeds, split, out, resolve_cache_dir(args.cache_dir))
        return 0
    print("| side | copies | seeds | ensemble NDCG@10 | R@10 | R@20 | LRURec alone NDCG@10 | R@10 |")
    print("|---|---|---|---|---|---|---|---|")
    for side in ("valid", "test"):
        print("\n".join(report(side, args.seeds, split, out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
