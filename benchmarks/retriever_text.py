"""Item text as an input to LRURec (issue 16, point 1): measured over several seeds, alone and in the ensemble.

LRURec (the ensemble's main member) learns one free embedding per item. The item vectors of the app's vector
store (all-MiniLM-L6-v2 over the item text; they ship with llmrec) can join it three ways:

``base``    LRURec at its registry defaults (the reference).
``text``    every item's embedding is its free embedding plus a learnt linear map of its text vector, on the
            input and (tied) on the output side, so similar texts start and stay near each other.
``textin``  the same on the input side only; the output layer keeps the free embeddings.
``init``    the free embeddings start from the text vectors' top principal components (scaled to the usual
            initial spread) and then train as usual.

``sasrec`` and ``ease`` (registry defaults) are the ensemble's other members, fitted the same way so that the
ensemble (1 LRURec + 0.3 SASRec + 0.1 EASE on per-user z-scores, each network averaged over its seeds, as
``ensemble5`` does) can be formed with each LRURec variant in LRURec's place.

``--split valid``: each model fitted on the training items with each user's last training item held out for early
stopping (the fusion's clean validation fit, docs/benchmarks/ranking.md 9.1), scored on the validation item.
``--split test``: the harness's test-time fit (the training items, stopped on the validation item), scored on the
test item. One thread per fit; runs are cached per variant, split and seed (figures and the masked score matrix)
under ``<work>/<dataset>/text-input/``. Choices are made on ``valid``; ``test`` is read to report them.

    B="nice -n 5 .venv/bin/python benchmarks/retriever_text.py --data-dir ../shared/data --work /work/rk"
    $B --shard 0/2 & $B --shard 1/2; wait; $B                      # clean validation, and the tables
    $B --split test --variants base,textin,sasrec,ease --shard 0/2 & ...; $B --split test --variants ...
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
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).parent))
import ranking as R  # one split, one metric code with the sweep

from llmrec.baselines.lrurec import LRURec, LRURecConfig, LRURecNet

log = logging.getLogger("retriever_text")
LRURECS = ("base", "text", "textin", "init")
REFERENCE = ("sasrec", "ease")  # the ensemble's other members, at their registry defaults
VARIANTS = LRURECS + REFERENCE


class TextNet(LRURecNet):
    """Item embedding = free embedding + W * text vector, on the input and the tied output side."""

    text_vectors: torch.Tensor  # (n_items, d), set on a subclass before fitting (scorer_class)
    tied_output = True

    def __init__(self, n_items: int, cfg: LRURecConfig) -> None:
        super().__init__(n_items, cfg)
        vectors = self.text_vectors
        self.register_buffer("text", torch.cat([torch.zeros(1, vectors.shape[1]), vectors]))  # row 0: padding
        self.text_proj = nn.Linear(vectors.shape[1], cfg.hidden, bias=False)

    def table(self) -> torch.Tensor:
        return self.items.weight + self.text_proj(self.text)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.norm(F.embedding(seq, self.table(), padding_idx=0)))
        for block in self.blocks:
            x = block(x)
        return x

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        weight = self.table()[1:] if self.tied_output else self.items.weight[1:]
        return torch.addmm(self.bias, hidden, weight.T)


class TextInNet(TextNet):
    tied_output = False


class InitNet(LRURecNet):
    """LRURec whose free embeddings start from the text vectors' principal components."""

    text_vectors: torch.Tensor

    def __init__(self, n_items: int, cfg: LRURecConfig) -> None:
        super().__init__(n_items, cfg)
        centred = self.text_vectors - self.text_vectors.mean(0)
        u, s, _ = torch.linalg.svd(centred, full_matrices=False)
        components = u[:, : cfg.hidden] * s[: cfg.hidden]
        with torch.no_grad():
            self.items.weight[1:] = components / components.std() * 0.02  # LRURec's initial spread


def scorer_class(variant: str, vectors: torch.Tensor) -> type[LRURec]:
    if variant == "base":
        return LRURec
    net = {"text": TextNet, "textin": TextInNet, "init": InitNet}[variant]
    bound = type(f"{net.__name__}Bound", (net,), {"text_vectors": vectors})
    return type(f"LRURec_{variant}", (LRURec,), {"Net": bound})


def item_vectors(dataset: str, data_dir: str | None, data: Any, seq: Any) -> torch.Tensor:
    """The vector store's item vectors in the sequences' dense item order (unit length)."""
    from llmrec.config import RecommenderConfig
    from llmrec.pipeline import Recommender

    config = RecommenderConfig().updated(data={"dataset": dataset, "data_dir": data_dir})
    got = Recommender(config, dataset=data).index.get_vectors([str(i) for i in seq.item_ids])
    missing = [i for i in seq.item_ids if str(i) not in got]
    if missing:
        raise SystemExit(f"retriever_text: {len(missing)} items have no vector in the store (e.g. {missing[0]}); "
                         "rebuild it with `llmrec index`")  # fmt: skip
    return torch.from_numpy(np.stack([got[str(i)] for i in seq.item_ids])).float()


def run(variant: str, seed: int, split_name: str, split: Any, vectors: torch.Tensor, folder: Path) -> dict[str, Any]:
    """One fit's figures, cached with its masked score matrix."""
    from llmrec.baselines import get_scorer

    stem = folder / f"{variant}-{split_name}-seed{seed}"
    saved, scores_path = stem.with_suffix(".json"), stem.with_suffix(".npy")
    if saved.is_file() and scores_path.is_file():
        return json.loads(saved.read_text())
    began = time.monotonic()
    torch.set_num_threads(1)
    if split_name == "valid":
        train, cases = dataclasses.replace(split.tune_train, validation=None), split.valid
    else:
        train, cases = split.final_train, split.test
    train = dataclasses.replace(train, seed=train.seed + seed)
    if variant in REFERENCE:
        scorer = get_scorer(variant, **(R.COMMON if R._is_neural(variant) else {})).fit(train)
    else:
        scorer = scorer_class(variant, vectors)(**R.COMMON).fit(train)
    scores = R.masked_scores(scorer, cases)
    result = getattr(scorer, "train_result_", None)
    figures = {"variant": variant, "seed": seed, "split": split_name, "seconds": round(time.monotonic() - began),
               "epochs": getattr(result, "epochs_run", 0), "best_epoch": getattr(result, "best_epoch", 0),
               **R.metrics_of(scores, cases)}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    np.save(scores_path, scores)
    saved.write_text(json.dumps(figures, indent=1))
    log.info("%s %s seed %d: NDCG@10 %.4f R@20 %.4f (%d s)", variant, split_name, seed, figures["ndcg@10"],
             figures["recall@20"], figures["seconds"])  # fmt: skip
    return figures


def single_rows(results: list[dict[str, Any]], variants: tuple[str, ...]) -> list[str]:
    rows = []
    for variant in variants:
        runs = [r for r in results if r["variant"] == variant]
        if runs:
            per_seed = ", ".join(f"{r['ndcg@10']:.4f}" for r in runs)
            epochs = ", ".join(f"{r['epochs']} ({r['best_epoch']})" for r in runs)
            mean = np.mean([r["ndcg@10"] for r in runs])
            r10, r20 = (np.mean([r[key] for r in runs]) for key in ("recall@10", "recall@20"))
            rows.append(f"| {variant}, {len(runs)} seed(s): mean (per seed) | {mean:.4f} ({per_seed}) | {r10:.4f} | "
                        f"{r20:.4f} | {epochs} |")  # fmt: skip
    return rows


def ensemble_rows(folder: Path, split_name: str, cases: Any, seeds: int) -> list[str]:
    """The registry ensemble's weights with each LRURec variant in LRURec's place, one seed and all seeds."""
    from llmrec.baselines.ensemble import EnsembleConfig, seed_average, standardise
    from llmrec.evaluation.metrics import hit_matrix, per_user_metrics, top_k

    defaults = EnsembleConfig()
    weight = dict(zip(defaults.members, defaults.weights))
    w_lrurec, w_sasrec, w_ease = weight["lrurec"], weight["sasrec"], weight["ease"]  # the members this script fits
    label = f"ensemble ({w_lrurec:g} / {w_sasrec:g} / {w_ease:g})"

    def averaged(variant: str, k: int) -> np.ndarray:
        return seed_average([standardise(np.load(folder / f"{variant}-{split_name}-seed{s}.npy")) for s in range(k)])

    def per_user_ndcg(scores: np.ndarray) -> np.ndarray:
        return per_user_metrics(hit_matrix(top_k(scores, 10), cases.targets), cases.n_relevant, 10)["ndcg"]

    rows, reference = [], {}
    for variant in LRURECS:
        for k in sorted({1, seeds}):
            needed = [folder / f"{v}-{split_name}-seed{s}.npy" for v in (variant, "sasrec") for s in range(k)]
            if not all(p.is_file() for p in [*needed, folder / f"ease-{split_name}-seed0.npy"]):
                continue
            members = {"lrurec": averaged(variant, k), "sasrec": averaged("sasrec", k), "ease": averaged("ease", 1)}
            total = R.weighted(members, weight).astype(np.float32)
            m, users = R.metrics_of(total, cases), per_user_ndcg(total)
            reference.setdefault(k, users)  # LRURec base comes first
            diff = users - reference[k]
            spread = diff.std(ddof=1) / np.sqrt(len(diff))
            paired = f"; paired vs base {diff.mean():+.4f} ± {spread:.4f}" if variant != "base" else ""
            rows.append(f"| {label} with LRURec {variant}, {k} seed(s) per network | "
                        f"{m['ndcg@10']:.4f} ± {m['ndcg@10_se']:.4f}{paired} | {m['recall@10']:.4f} | "
                        f"{m['recall@20']:.4f} | |")  # fmt: skip
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="ml-latest-small")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--work", required=True, help="cache folder for the runs")
    p.add_argument("--split", choices=("valid", "test"), default="valid")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--shard", default="0/1", help="i/n: run every n-th (variant, seed) from the i-th; n > 1 prints "
                   "no table")  # fmt: skip
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    variants = tuple(args.variants.split(","))
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        p.error(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    index, count = (int(x) for x in args.shard.split("/"))
    data, seq, split = R.load_split(args.dataset, args.data_dir)
    vectors = item_vectors(args.dataset, args.data_dir, data, seq)
    folder = Path(args.work) / seq.name / "text-input"
    jobs = [(v, s) for s in range(args.seeds) for v in variants if not (v == "ease" and s)]  # EASE: deterministic
    results = [run(v, s, args.split, split, vectors, folder) for n, (v, s) in enumerate(jobs) if n % count == index]
    if count == 1:
        cases = split.valid if args.split == "valid" else split.test
        print(f"{args.dataset}, {args.split} ({'clean validation fits' if args.split == 'valid' else 'test-time fits'}"
              f"), {seq.n_users} users\n")  # fmt: skip
        print("| model | NDCG@10 | R@10 | R@20 | epochs (best) |\n|---|---|---|---|---|")
        print("\n".join(single_rows(results, variants) + ensemble_rows(folder, args.split, cases, args.seeds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
