"""LLM benchmarks on ml-latest-small: ranking latency, explanation speed, memory, faithfulness.

    python benchmarks/llm.py --data-dir ../shared/data [--model qwen2.5-coder-0.5b-instruct]
        [--users 20] [--faithfulness-users 200] [--dtypes float32,bfloat16]
        [--explain-adapter DIR | --zero-shot] [--records FILE.jsonl] [--recheck A.jsonl,B.jsonl]

Prints one JSON object. Candidates come from EASE (fitted on every user's full history), the
explanations from the LLM explainer with its faithfulness check and template fallback. The explainer
runs with the shipped explainer adapter when there is one (``--zero-shot`` for the base model).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from typing import Any

import numpy as np

from llmrec.data import load_dataset, preprocess
from llmrec.evidence import collect_evidence
from llmrec.explanation import LLMExplainer, Vocabulary, template_explanation, unsupported_claims
from llmrec.llm import prepare_model
from llmrec.llm.local import TransformersLLM
from llmrec.pipeline.stores import fit_cf_scorer
from llmrec.profile import history_profile
from llmrec.ranking import LLMRanker
from llmrec.retrieval.collaborative import CollaborativeRetriever


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--users", type=int, default=20, help="users for the latency runs")
    parser.add_argument("--faithfulness-users", type=int, default=200)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--explain-adapter", default=None, help="explainer LoRA (default: the shipped one)")
    parser.add_argument("--zero-shot", action="store_true", help="explain with the base model, no adapter")
    parser.add_argument("--records", default=None, help="write each faithfulness record to this JSONL file")
    parser.add_argument("--skip", type=int, default=0, help="start after this many sampled users (to shard a run)")
    parser.add_argument("--recheck", default=None,
                        help="comma-separated JSONL files of --records: check their sentences again with today's "
                             "check (same users, same evidence) instead of generating")  # fmt: skip
    args = parser.parse_args()
    from llmrec.adapters import shipped_adapter

    explain_adapter = None if args.zero_shot else (args.explain_adapter or shipped_adapter(args.model, "explain"))

    ds = load_dataset("ml-latest-small", data_dir=args.data_dir)
    seq = preprocess(ds)
    retriever = CollaborativeRetriever(fit_cf_scorer("ease", seq), seq, label="ease", items=ds.items)
    rng = np.random.default_rng(0)
    users = [seq.user_ids[u] for u in rng.permutation(seq.n_users)]
    if args.recheck:
        recheck(args.recheck.split(","), ds, users, retriever)
        return
    folder = prepare_model(args.model)
    report: dict = {"model": args.model, "adapter": args.adapter, "explain_adapter": str(explain_adapter or ""),
                    "threads": args.threads, "dtypes": {}}  # fmt: skip

    for dtype in [d for d in args.dtypes.split(",") if d and args.users > 0]:
        llm = TransformersLLM(folder, name=args.model, adapter=args.adapter, dtype=dtype, threads=args.threads,
                              explain_adapter=explain_adapter)  # fmt: skip
        ranker = LLMRanker(llm, ds.items)
        explainer = LLMExplainer(llm, ds.items)
        rank_s, first_s, total_s, tokens_per_s, prompt_tokens = [], [], [], [], []
        for user in users[: args.users]:
            profile = history_profile(ds, user)
            cands = retriever.retrieve(profile, 20)
            prompt_tokens.append(llm.count_tokens(ranker.messages(profile, cands)))
            start = time.perf_counter()
            ranked = ranker.rank(profile, cands, 20)
            rank_s.append(time.perf_counter() - start)
            evidence = collect_evidence(profile, ranked[0], ds.items)
            start = time.perf_counter()
            first = None
            pieces = []
            for piece in llm.stream(explainer.messages(ds.items[ranked[0].item_id], evidence), 60):
                first = first or time.perf_counter() - start
                pieces.append(piece)
            total = time.perf_counter() - start
            n_tokens = len(llm.tokenizer.encode("".join(pieces), add_special_tokens=False))
            first_s.append(first or total)
            total_s.append(total)
            tokens_per_s.append(n_tokens / total if total else 0.0)
        report["dtypes"][dtype] = {
            "rank20_p50_s": percentile(rank_s, 50), "rank20_p95_s": percentile(rank_s, 95),
            "prompt_tokens_mean": statistics.mean(prompt_tokens),
            "explain_first_token_p50_s": percentile(first_s, 50), "explain_total_p50_s": percentile(total_s, 50),
            "explain_tokens_per_s": statistics.mean(tokens_per_s),
            "peak_rss_gib_so_far": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        }  # fmt: skip
        print(json.dumps({dtype: report["dtypes"][dtype]}), flush=True)

    # Faithfulness: the first recommendation of each user, explained by the LLM (fp32).
    llm = TransformersLLM(folder, name=args.model, dtype="float32", threads=args.threads,
                          explain_adapter=explain_adapter)  # fmt: skip
    explainer = LLMExplainer(llm, ds.items)
    vocab = Vocabulary.from_items(ds.items)
    kept = rejected = unfaithful_final = 0
    reasons: dict[str, int] = {}
    records = open(args.records, "w", encoding="utf-8") if args.records else None  # noqa: SIM115
    start = time.perf_counter()
    for user in users[args.skip : args.skip + args.faithfulness_users]:
        item, evidence = first_recommendation(ds, retriever, user)
        raw = llm.generate(explainer.messages(item, evidence), 60)
        text, problems = explainer.check(raw, item, evidence)
        count_reasons(reasons, problems)
        if problems:
            rejected += 1
            text = template_explanation(item, evidence)  # what the user is shown instead
        else:
            kept += 1
        unfaithful_final += bool(unsupported_claims(text, item, evidence, vocab))
        record = {"user": user, "item": item.display_title, "kept": not problems, "problems": problems[:5], "text": raw}
        print(json.dumps(record, ensure_ascii=False), file=records or sys.stderr, flush=True)
    if records:
        records.close()
    n = kept + rejected
    report["faithfulness"] = {
        "prompt": explainer.prompt.ref,
        "users": n, "llm_faithful_share": kept / n, "template_fallback_share": rejected / n,
        "final_unfaithful": unfaithful_final, "seconds": time.perf_counter() - start,
        "top_rejection_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:10]),
    }  # fmt: skip
    report["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(report, indent=2))


def first_recommendation(ds: Any, retriever: Any, user: str) -> tuple[Any, Any]:
    """The item the faithfulness runs explain for ``user`` (EASE's first) and its evidence."""
    profile = history_profile(ds, user)
    candidate = retriever.retrieve(profile, 1)[0]
    return ds.items[candidate.item_id], collect_evidence(profile, candidate, ds.items)


def count_reasons(reasons: dict[str, int], problems: list[str]) -> None:
    for problem in problems[:3]:
        reasons[problem] = reasons.get(problem, 0) + 1


def recheck(files: list[str], ds: Any, users: list[str], retriever: Any) -> None:
    """Faithfulness of recorded sentences under the current check: what the check would keep now."""
    recorded: dict[str, dict] = {}
    for name in files:
        with open(name, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    record = json.loads(line)
                    recorded[str(record["user"])] = record
    explainer = LLMExplainer(None, ds.items)  # type: ignore[arg-type]  # check() needs no model
    kept_then = kept_now = 0
    reasons: dict[str, int] = {}
    for user in [u for u in users if str(u) in recorded]:
        record = recorded[str(user)]
        item, evidence = first_recommendation(ds, retriever, user)
        if item.display_title != record["item"]:
            raise SystemExit(f"error: user {user} was explained {record['item']!r}, now {item.display_title!r}")
        _, problems = explainer.check(record["text"], item, evidence)
        kept_then += bool(record["kept"])
        kept_now += not problems
        count_reasons(reasons, problems)
    n = len(recorded)
    print(json.dumps({"users": n, "kept_when_recorded": kept_then, "kept_now": kept_now,
                      "kept_now_share": kept_now / n if n else 0.0,
                      "top_rejection_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:10])}, indent=2))


if __name__ == "__main__":
    main()
