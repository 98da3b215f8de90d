"""Train the neural recommenders on a data set and print their test metrics (BENCHMARKS-neural.md).

    .venv/bin/python benchmarks/neural.py --data-dir ../shared/data
    .venv/bin/python benchmarks/neural.py --models sasrec --set sasrec.hidden=128 --set sasrec.dropout=0.3

Uses the evaluation harness's own pieces: the leave-one-out split (fit data = train+valid; each
model holds out the last item per user for early stopping, i.e. trains on train and stops on valid),
full ranking with the input history masked, genre multi-hot vectors for intra-list diversity.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any

from llmrec.baselines.registry import get_scorer
from llmrec.data import load_dataset, preprocess
from llmrec.evaluation.harness import EvalContext, genre_embeddings, list_metrics, rank_with_scorer
from llmrec.evaluation.protocols import loo_split

log = logging.getLogger("benchmarks.neural")
MODELS = ("ncf", "sasrec", "lrurec", "bert4rec", "lightgcn", "cfgan")
COLUMNS = ("ndcg@10", "recall@10", "recall@20", "recall@50", "diversity@10", "novelty@10", "coverage@10")


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def overrides(pairs: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        model, _, param = key.partition(".")
        out.setdefault(model, {})[param] = parse_value(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="MODEL.PARAM=VALUE")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--verbose", action="store_true", help="log every epoch (loss, validation NDCG@10)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.verbose:
        logging.getLogger("llmrec.baselines.training").setLevel(logging.DEBUG)
    data = load_dataset(args.dataset, data_dir=args.data_dir)
    seq = preprocess(data)
    split = loo_split(seq, args.seed)
    context = EvalContext.for_split(split, genre_embeddings(data, seq.item_ids))
    params = overrides(args.set)
    rows = {}
    for name in args.models.split(","):
        scorer = get_scorer(name, **params.get(name, {}))
        began = time.perf_counter()
        scorer.fit(split.final_train)
        fit_seconds = time.perf_counter() - began
        ranked, score_seconds = rank_with_scorer(scorer, split.test, 50)
        metrics = list_metrics(ranked, split.test, context, with_se=True)
        result = scorer.train_result_
        rows[name] = {
            **{c: round(metrics[c], 4) for c in COLUMNS},
            "ndcg@10_se": round(metrics["ndcg@10_se"], 4),
            "fit_seconds": round(fit_seconds, 1),
            "score_seconds": round(score_seconds, 2),
            "epochs": result.epochs_run,
            "best_epoch": result.best_epoch,
            "valid_ndcg@10": None if result.best_metric is None else round(result.best_metric, 4),
            "stopped": result.stopped,
            "hyperparameters": scorer.hyperparameters(),
        }
        log.info("%s: %s", name, json.dumps(rows[name]))
    header = ["model", *COLUMNS, "fit s", "epochs (best)", "valid ndcg@10"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in rows.items():
        cells = [name, *(f"{row[c]:.4f}" for c in COLUMNS), f"{row['fit_seconds']:.0f}",
                 f"{row['epochs']} ({row['best_epoch']})", str(row["valid_ndcg@10"])]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    log.info("results\n%s", "\n".join(lines))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
