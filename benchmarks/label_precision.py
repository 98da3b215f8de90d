"""How much the language model's label scores move with OpenVINO's precision and thread count (issue 16's cards).

A fusion card's test figures are only every machine's if the label scores it was fitted on are. This scores the
ranking prompts of the first ``--users`` test users (the SASRec retriever's 20 candidates, the shipped prompt, the
zero-shot 0.5B model) at f32 with one thread (the reference), f32 with two, and bf16 (where the CPU has it) and
prints, against the reference: the largest and mean absolute difference of the scores, and in how many prompts the
order of the 20 labels changed.

    .venv/bin/python benchmarks/label_precision.py --data-dir ../shared/data [--users 12]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ranking import load_split

SETTINGS = (("f32", 1), ("f32", 2), ("bf16", 2))  # the first is the reference


def prompts(data_dir: str | None, users: int, llm: Any, model: str) -> tuple[list[list[dict[str, str]]], list[str]]:
    """The fused ranker's prompts for the first ``users`` test users and its labels: the LLM ranker ``model``'s SASRec
    card was fitted with (its prompt, labels, history length) over ``llm``, the windows the CLI's road builds."""
    from llmrec.config import RankerConfig
    from llmrec.evaluation.rerank import RerankPipeline
    from llmrec.fusion import FusionModel, card_llm_ranker, fusion_file
    from llmrec.paths import resolve_cache_dir

    data, seq, split = load_split("ml-latest-small", data_dir)
    card = FusionModel.load(fusion_file(model, "ml-latest-small", "sasrec"))
    pipeline = RerankPipeline("sasrec", None, seq.item_ids, data.items, seq.ratings, n_candidates=20,
                              cache_dir=resolve_cache_dir(None)).fit(split.final_train)  # fmt: skip
    cases = split.test.subset(slice(0, users))
    top, scores = pipeline.candidates(cases.users, cases.histories, strict=True)
    ranker = card_llm_ranker(card, llm, data.items, max_history=RankerConfig().max_history)
    return [ranker.messages(pipeline.profile(int(u), h), pipeline.window(t, s))
            for u, h, t, s in zip(cases.users, cases.histories, top, scores)], list(ranker.labels)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    from llmrec.llm import prepare_model
    from llmrec.llm.runtime import load_llm

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--users", type=int, default=12)
    p.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    folder = prepare_model(args.model)
    messages: list[list[dict[str, str]]] = []
    labels: list[str] = []
    reference = None
    print("| precision | threads | s per prompt | max abs diff | mean abs diff | prompts reordered |")
    print("|---|---|---|---|---|---|")
    for precision, threads in SETTINGS:
        llm = load_llm(folder, args.model, {}, runtime="openvino", threads=threads, precision=precision)
        if not messages:
            messages, labels = prompts(args.data_dir, args.users, llm, args.model)
        start = time.perf_counter()
        got = np.array([llm.score_options(m, labels, task="rank") for m in messages])
        seconds = (time.perf_counter() - start) / len(messages)
        reference = got if reference is None else reference
        diff = np.abs(got - reference)
        moved = sum(bool((np.argsort(-a, kind="stable") != np.argsort(-b, kind="stable")).any())
                    for a, b in zip(got, reference))  # fmt: skip
        print(f"| {getattr(llm, 'precision', '?')} (asked {precision}) | {threads} | {seconds:.2f} | {diff.max():.2g} "
              f"| {diff.mean():.2g} | {moved} of {len(messages)} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
