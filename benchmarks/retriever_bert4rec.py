"""BERT4Rec as a retriever (issue 16, point 1): its settings on clean validation, then alone and beside ``ensemble5``.

BERT4Rec (``llmrec.baselines.bert4rec``) is the one sequential model the issue names that had not been measured.
Three stages, each cached under ``<work>/<dataset>/``:

``--sweep NAME=JSON ...``  one BERT4Rec fit per setting (JSON: changes to the registry defaults), on the training
                           items with each user's last training item held out for early stopping, scored on the
                           validation item (the fusion's clean validation fit, docs/benchmarks/ranking.md 9.1).
``--member M --side S``    five seeded hold-out copies of ``M`` (``bert4rec`` at its registry defaults, or one of
                           ``ensemble5``'s networks) on one side: ``valid`` as above, ``test`` the harness's
                           test-time fit; ``retriever_refit.train`` without its refits, into the same cache, so the
                           two scripts share their copies (the test side's LRURec and SASRec are the shipped ones).
no option                  the tables: the sweep; BERT4Rec alone by number of seeds; ``ensemble5`` with BERT4Rec
                           added at weight w (its five copies' z-scores averaged like the other networks'), w chosen
                           on clean validation by the ensemble's rule (Recall@20, then NDCG@10) and read on test.

    B="nice -n 5 .venv/bin/python benchmarks/retriever_bert4rec.py --data-dir ../shared/data --work /work/rk"
    $B --sweep 'default={}' 'mask1={"mask_prob": 0.1}' ...
    for m in lrurec sasrec bert4rec; do ($B --member $m --side valid; $B --member $m --side test) & done; wait
    $B
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import ranking as R  # one split, one metric code with the sweep
import retriever_refit as F  # the seeded hold-out copies and their cache

log = logging.getLogger("retriever_bert4rec")
WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)  # BERT4Rec's weight beside ensemble5's (LRURec's is 1)
SEEDS = 5


def sweep(settings: dict[str, dict[str, Any]], split: Any, folder: Path) -> list[dict[str, Any]]:
    """One clean-validation fit per setting (cached as JSON with its masked score matrix)."""
    import torch

    from llmrec.baselines import get_scorer

    results = []
    for name, params in settings.items():
        saved = folder / f"{name}.json"
        if saved.is_file() and json.loads(saved.read_text())["params"] == params:
            results.append(json.loads(saved.read_text()))
            continue
        began = time.monotonic()
        torch.set_num_threads(1)
        scorer = get_scorer("bert4rec", **{**R.COMMON, **params}).fit(dataclasses.replace(split.tune_train,
                                                                                          validation=None))  # fmt: skip
        scores = R.masked_scores(scorer, split.valid)
        result = scorer.train_result_
        figures = {"name": name, "params": params, "seconds": round(time.monotonic() - began),
                   "epochs": result.epochs_run, "best_epoch": result.best_epoch,
                   **R.metrics_of(scores, split.valid)}  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"{name}.npy", scores)
        saved.write_text(json.dumps(figures, indent=1))
        log.info("%s: NDCG@10 %.4f R@20 %.4f (%d s)", name, figures["ndcg@10"], figures["recall@20"],
                 figures["seconds"])
        results.append(figures)
    return results


def member_scores(side: str, split: Any, out: Path, seeds: int = SEEDS, own: int = SEEDS
                  ) -> dict[str, np.ndarray] | None:  # fmt: skip
    """``ensemble5``'s members' z-scores (networks averaged over their ``seeds`` hold-out copies) and BERT4Rec's
    (over its ``own``), or None while a copy is missing."""
    z = {m: F.member_z(m, side, "holdout", seeds, out) for m in F.NETWORKS}
    z["bert4rec"] = F.member_z("bert4rec", side, "holdout", own, out)
    if any(v is None for v in z.values()):
        return None
    return {**z, **F.fixed_z(side, split, out)}


def tables(split: Any, out: Path, seeds: int = SEEDS, own: int = SEEDS) -> list[str]:
    from llmrec.evaluation.protocols import mask_scores

    lines = ["| side | model | NDCG@10 | R@10 | R@20 |", "|---|---|---|---|---|"]
    pairs: dict[str, tuple[Any, dict[str, np.ndarray]]] = {}  # per side: cases; ensemble5's sum and BERT4Rec's z
    for side in ("valid", "test"):
        _, cases = F.fit_side(side, split)
        z = member_scores(side, split, out, seeds, own)
        if z is None:
            lines.append(f"| {side} | (copies missing: run --member for each network on this side) | | | |")
            continue
        for k in sorted({1, own}):
            alone = R.metrics_of(mask_scores(F.member_z("bert4rec", side, "holdout", k, out), cases), cases)
            lines.append(f"| {side} | BERT4Rec alone, {k} seed(s) | {alone['ndcg@10']:.4f} ± {alone['ndcg@10_se']:.4f}"
                         f" | {alone['recall@10']:.4f} | {alone['recall@20']:.4f} |")  # fmt: skip
        # masked here, so the weight search (ranking.py's, on masked scores) and the rows see the same lists
        pairs[side] = cases, {"ensemble5": mask_scores(R.weighted(z, F._ENSEMBLE), cases),
                              "bert4rec": mask_scores(z["bert4rec"].copy(), cases)}  # fmt: skip
    if "valid" not in pairs:
        return lines
    # BERT4Rec's weight beside ensemble5's fixed ones, by the ensemble's own rule (ranking.md 5.1)
    chosen = R.search_weights(pairs["valid"][1], ("ensemble5", "bert4rec"), split.valid, WEIGHTS)["bert4rec"]
    for side, (cases, pair) in pairs.items():
        for w in WEIGHTS:
            m = R.metrics_of(R.weighted(pair, {"ensemble5": 1.0, "bert4rec": w}).astype(np.float32), cases)
            label = "`ensemble5`" if w == 0 else f"`ensemble5` + {w:g} BERT4Rec" + (" (chosen)" if w == chosen else "")
            lines.append(f"| {side} | {label} | {m['ndcg@10']:.4f} ± {m['ndcg@10_se']:.4f} | {m['recall@10']:.4f} | "
                         f"{m['recall@20']:.4f} |")  # fmt: skip
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="ml-latest-small")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--work", required=True, help="cache folder for the runs")
    p.add_argument("--cache-dir", default=None, help="llmrec's cache (the shipped ensemble5 copies are installed "
                   "there); default: the configured one")  # fmt: skip
    p.add_argument("--sweep", nargs="+", metavar="NAME=JSON", help="BERT4Rec settings to fit on clean validation")
    p.add_argument("--member", choices=(*F.NETWORKS, "bert4rec"), help="fit this network's five hold-out copies")
    p.add_argument("--side", choices=("valid", "test"), default="valid")
    p.add_argument("--seeds", type=int, default=SEEDS, help="copies per network to fit, and ensemble5's in the tables")
    p.add_argument("--bert4rec-seeds", type=int, default=SEEDS, help="BERT4Rec's copies in the tables")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from llmrec.paths import resolve_cache_dir

    _, seq, split = R.load_split(args.dataset, args.data_dir)
    out = Path(args.work) / seq.name / "refit"
    out.mkdir(parents=True, exist_ok=True)
    if args.member:
        F.train(args.member, args.side, args.seeds, split, out, resolve_cache_dir(args.cache_dir), refit=False)
        return 0
    folder = Path(args.work) / seq.name / "bert4rec-sweep"
    settings = {}
    for item in args.sweep or []:
        name, sep, text = item.partition("=")
        try:
            settings[name] = json.loads(text) if sep else None
        except ValueError:
            settings[name] = None
        if not isinstance(settings[name], dict):
            p.error(f"--sweep {item!r}: give NAME=JSON object, e.g. 'mask1={{\"mask_prob\": 0.1}}'")
    done = sweep(settings, split, folder) if settings else [json.loads(f.read_text()) for f in
                                                            sorted(folder.glob("*.json"))]  # fmt: skip
    print("| BERT4Rec setting (clean validation) | NDCG@10 | R@10 | R@20 | epochs (best) | seconds |")
    print("|---|---|---|---|---|---|")
    for r in done:
        print(f"| {r['name']} {json.dumps(r['params'])} | {r['ndcg@10']:.4f} ± {r['ndcg@10_se']:.4f} | "
              f"{r['recall@10']:.4f} | {r['recall@20']:.4f} | {r['epochs']} ({r['best_epoch']}) | {r['seconds']} |")
    if not settings:
        print("\n" + "\n".join(tables(split, out, args.seeds, args.bert4rec_seeds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
