"""The language model's speed, old path (transformers) against new (OpenVINO), side by side (issue 15).

    python benchmarks/speed.py --data-dir ../shared/data [--runtimes transformers@1,openvino@2] [--users 8]
        [--ndcg-users 200] [--threads 2] [--blend 0] [--json OUT]

``--runtimes`` lists runtime@prompt-version pairs: the old path is transformers with ``rank@1``, the new one
OpenVINO with ``rank@2``.

Each runtime runs in its own child process (so peak RSS is its own) on the same seeded users of
ml-latest-small, EASE candidates, the shipped ranker and explainer adapters:

- a session of three turns per user: turn 1 ranks EASE's top 20; turn 2 the next 20 (a new list after
  feedback); turn 3 the next 20 after the user states a preference. Turn 1 is the "first turn", turns 2-3
  the "later turns" (the conversation's prefix is reused where the runtime can);
- the first recommendation's explanation, streamed: time to the first token, tokens per second;
- NDCG@10 of EASE -> LLM ranker on ``--ndcg-users`` seeded test users (leave-one-out, the harness's
  ``RerankPipeline``; only users whose test item is among the candidates cost a forward pass); ``--blend 0``
  (the LLM's own order) by default, so score differences show;
- load time, the export's time (OpenVINO, from its manifest), peak RSS.

Prints one JSON object per runtime, then a table. Timings are wall-clock on a shared machine: read them
with the load average printed beside them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

MODEL = "qwen2.5-coder-0.5b-instruct"


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3) if values else float("nan")


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0]) if Path("/proc/loadavg").is_file() else float("nan")


def run_one(args: argparse.Namespace) -> dict[str, Any]:
    from llmrec.adapters import shipped_adapter
    from llmrec.data import load_dataset, preprocess
    from llmrec.evidence import collect_evidence
    from llmrec.explanation import LLMExplainer
    from llmrec.llm import prepare_model
    from llmrec.llm.runtime import load_llm
    from llmrec.pipeline.stores import fit_cf_scorer
    from llmrec.profile import history_profile
    from llmrec.prompts import load_prompt
    from llmrec.ranking import LLMRanker
    from llmrec.retrieval.collaborative import CollaborativeRetriever

    ds = load_dataset("ml-latest-small", data_dir=args.data_dir)
    seq = preprocess(ds)
    retriever = CollaborativeRetriever(fit_cf_scorer("ease", seq), seq, label="ease", items=ds.items)
    adapters = {t: p for t in ("rank", "explain") if (p := shipped_adapter(args.model, t)) is not None}
    folder = prepare_model(args.model)
    began = time.perf_counter()
    llm = load_llm(folder, args.model, adapters, runtime=args.one, threads=args.threads)
    out: dict[str, Any] = {"runtime": getattr(llm, "runtime", "transformers"), "asked": f"{args.one}@{args.prompt}",
                           "load_s": round(time.perf_counter() - began, 1), "prompt": f"rank@{args.prompt}",
                           "precision": getattr(llm, "precision", None), "threads": args.threads}  # fmt: skip
    manifest = getattr(llm, "manifest", None)
    out["export_s"] = manifest.get("seconds") if manifest else None
    ranker = LLMRanker(llm, ds.items, blend=args.blend, prompt=load_prompt("rank", args.prompt))
    explainer = LLMExplainer(llm, ds.items)
    users = [seq.user_ids[u] for u in np.random.default_rng(0).permutation(seq.n_users)[: args.users]]
    first, later, explain_first, tokens_per_s, prompt_tokens, loads = [], [], [], [], [], []
    first_cpu, later_cpu, explain_cpu, token_cpu = [], [], [], []
    for user in users:
        profile = history_profile(ds, user)
        pool = retriever.retrieve(profile, 60)
        turns = [(profile, pool[:20]), (profile, pool[20:40]),
                 (dataclasses.replace(profile, stated_preferences=("something newer, nothing too violent",)),
                  pool[40:60])]  # fmt: skip
        for turn, (prof, cands) in enumerate(turns):
            prompt_tokens.append(llm.count_tokens(ranker.messages(prof, cands)))
            start, cpu = time.perf_counter(), time.process_time()
            ranked = ranker.rank(prof, cands, 20)
            (first if turn == 0 else later).append(time.perf_counter() - start)
            (first_cpu if turn == 0 else later_cpu).append(time.process_time() - cpu)
            if ranker.last_note:
                out.setdefault("notes", []).append(ranker.last_note)
        top = ranked[0]
        messages = explainer.messages(ds.items[top.item_id], collect_evidence(profile, top, ds.items))
        start, cpu = time.perf_counter(), time.process_time()
        pieces, first_piece, first_piece_cpu = [], None, 0.0
        for piece in llm.stream(messages, 60):
            if first_piece is None:
                first_piece, first_piece_cpu = time.perf_counter() - start, time.process_time() - cpu
                explain_cpu.append(first_piece_cpu)
            pieces.append(piece)
        total, total_cpu = time.perf_counter() - start, time.process_time() - cpu
        explain_first.append(first_piece or total)
        n_tokens = max(1, len(llm.tokenizer.encode("".join(pieces), add_special_tokens=False)))
        tokens_per_s.append(n_tokens / total)
        token_cpu.append((total_cpu - first_piece_cpu) / n_tokens)
        loads.append(load_average())
    out |= {"users": len(users), "rank20_first_turn_p50_s": percentile(first, 50),
            "rank20_first_turn_p95_s": percentile(first, 95), "rank20_later_turns_p50_s": percentile(later, 50),
            "rank20_later_turns_p95_s": percentile(later, 95),
            "prompt_tokens_mean": round(float(np.mean(prompt_tokens))),
            "explain_first_token_p50_s": percentile(explain_first, 50),
            "explain_first_token_p95_s": percentile(explain_first, 95),
            "explain_tokens_per_s": round(float(np.mean(tokens_per_s)), 2),
            "load_average_mean": round(float(np.mean(loads)), 1),
            # CPU seconds of this process (all its threads) per call: divided by the threads, about the wall time
            # on an idle machine (an upper bound: threads that wait for a core under load also spin)
            "cpu_s_first_turn_p50": percentile(first_cpu, 50), "cpu_s_later_turns_p50": percentile(later_cpu, 50),
            "cpu_s_explain_first_token_p50": percentile(explain_cpu, 50),
            "cpu_s_per_token_p50": percentile(token_cpu, 50)}  # fmt: skip
    if args.ndcg_users:
        out |= ndcg(args, ds, seq, llm)
    out["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return out


def agreement(args: argparse.Namespace) -> dict[str, Any]:
    """Both runtimes on the same prompts: the 20 label scores of ``--agreement`` users' first-turn ranking prompts
    (arg-max agreement, largest difference of the log-softmax, Kendall's tau) and greedy explanations of a few."""
    from scipy.stats import kendalltau

    from llmrec.adapters import shipped_adapter
    from llmrec.data import load_dataset, preprocess
    from llmrec.evidence import collect_evidence
    from llmrec.explanation import LLMExplainer
    from llmrec.llm import prepare_model
    from llmrec.llm.runtime import load_llm
    from llmrec.pipeline.stores import fit_cf_scorer
    from llmrec.profile import history_profile
    from llmrec.prompts import load_prompt
    from llmrec.ranking import LABELS, LLMRanker
    from llmrec.retrieval.collaborative import CollaborativeRetriever

    ds = load_dataset("ml-latest-small", data_dir=args.data_dir)
    seq = preprocess(ds)
    retriever = CollaborativeRetriever(fit_cf_scorer("ease", seq), seq, label="ease", items=ds.items)
    adapters = {t: p for t in ("rank", "explain") if (p := shipped_adapter(args.model, t)) is not None}
    folder = prepare_model(args.model)
    new = load_llm(folder, args.model, adapters, runtime="openvino", threads=args.threads)
    old = load_llm(folder, args.model, adapters, runtime="transformers", threads=args.threads)
    ranker = LLMRanker(new, ds.items, prompt=load_prompt("rank", args.prompt))
    explainer = LLMExplainer(new, ds.items)
    users = [seq.user_ids[u] for u in np.random.default_rng(1).permutation(seq.n_users)[: args.agreement]]
    same_top, diffs, taus, texts = 0, [], [], []
    for n, user in enumerate(users):
        profile = history_profile(ds, user)
        cands = retriever.retrieve(profile, 20)
        messages = ranker.messages(profile, cands)
        a, b = new.score_options(messages, LABELS), old.score_options(messages, LABELS)
        a, b = a - np.log(np.exp(a - a.max()).sum()) - a.max(), b - np.log(np.exp(b - b.max()).sum()) - b.max()
        same_top += int(a.argmax() == b.argmax())
        diffs.append(float(np.abs(a - b).max()))
        taus.append(float(kendalltau(a, b).statistic))
        if n < args.texts:
            top = cands[int(b.argmax())]
            prompt = explainer.messages(ds.items[top.item_id], collect_evidence(profile, top, ds.items))
            texts.append((new.generate(prompt, 60), old.generate(prompt, 60)))
    return {"agreement_prompts": len(users), "argmax_agreement": round(same_top / len(users), 3),
            "logprob_max_abs_diff_p50": percentile(diffs, 50), "logprob_max_abs_diff_max": round(max(diffs), 3),
            "kendall_tau_mean": round(float(np.mean(taus)), 4), "texts_identical": sum(x == y for x, y in texts),
            "texts_compared": len(texts), "texts": texts, "precision": getattr(new, "precision", None)}  # fmt: skip


def ndcg(args: argparse.Namespace, ds: Any, seq: Any, llm: Any) -> dict[str, Any]:
    """NDCG@10 (and its standard error) of EASE -> LLM ranker on seeded test users, as the harness measures it."""
    from llmrec.evaluation.harness import EvalContext, evaluate_pipeline
    from llmrec.evaluation.protocols import make_split
    from llmrec.evaluation.rerank import RerankPipeline
    from llmrec.prompts import load_prompt
    from llmrec.ranking import LLMRanker

    split = make_split("loo", seq, 0)
    prompt = load_prompt("rank", args.prompt)
    pipeline = RerankPipeline("ease", lambda: LLMRanker(llm, ds.items, blend=args.blend, prompt=prompt), seq.item_ids,
                              ds.items, seq.ratings)  # fmt: skip
    pipeline.targets = {int(u): frozenset(t.tolist()) for u, t in zip(split.test.users, split.test.targets)}
    began = time.perf_counter()
    result = evaluate_pipeline(pipeline, split, context=EvalContext.for_split(split), max_users=args.ndcg_users, seed=0)
    metrics = result.metrics
    return {"ndcg_users": result.n_users, "ndcg_llm_users": pipeline.llm_users,
            "ndcg@10": round(metrics["ndcg@10"], 4), "ndcg@10_se": round(metrics.get("ndcg@10_se", float("nan")), 4),
            "ndcg_fallbacks": pipeline.fallbacks, "ndcg_s": round(time.perf_counter() - began, 1)}  # fmt: skip


ROWS = [("runtime", "runtime"), ("precision", "precision"), ("prompt tokens (mean)", "prompt_tokens_mean"),
        ("rank 20, first turn p50 / p95 (s)", ("rank20_first_turn_p50_s", "rank20_first_turn_p95_s")),
        ("rank 20, later turns p50 / p95 (s)", ("rank20_later_turns_p50_s", "rank20_later_turns_p95_s")),
        ("explanation, first token p50 / p95 (s)", ("explain_first_token_p50_s", "explain_first_token_p95_s")),
        ("explanation tokens / s", "explain_tokens_per_s"), ("NDCG@10 (± s.e.)", ("ndcg@10", "ndcg@10_se")),
        ("users scored by the LLM for NDCG", "ndcg_llm_users"), ("load (s)", "load_s"),
        ("export (s, once)", "export_s"),
        ("CPU s per call: rank first turn / later turns", ("cpu_s_first_turn_p50", "cpu_s_later_turns_p50")),
        ("CPU s to the first explanation token", "cpu_s_explain_first_token_p50"),
        ("CPU s per generated token", "cpu_s_per_token_p50"),
        ("peak RSS (GiB)", "peak_rss_gib"), ("load average during the run", "load_average_mean")]  # fmt: skip


def table(results: list[dict[str, Any]]) -> str:
    def cell(result: dict[str, Any], key: Any) -> str:
        if isinstance(key, tuple):
            sep = " ± " if key[0] == "ndcg@10" else " / "
            return sep.join(str(result.get(k, "")) for k in key)
        return str(result.get(key, ""))

    lines = ["| | " + " | ".join(r.get("asked", "") for r in results) + " |", "|---|" + "---:|" * len(results)]
    lines += [f"| {label} | " + " | ".join(cell(r, key) for r in results) + " |" for label, key in ROWS]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--runtimes", default="transformers@1,openvino@2", help="runtime@prompt version, ...")
    parser.add_argument("--users", type=int, default=8, help="users whose three-turn session is timed")
    parser.add_argument("--ndcg-users", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=2, help=argparse.SUPPRESS)  # a child's prompt version
    parser.add_argument("--blend", type=float, default=0.0, help="retrieval blend of the ranker (0: LLM order)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--agreement", type=int, default=0,
                        help="instead: compare both runtimes' scores on this many users' prompts (rank@--prompt)")
    parser.add_argument("--texts", type=int, default=5, help="with --agreement: greedy explanations compared")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child: measure one runtime
    args = parser.parse_args()
    if args.agreement:
        print(json.dumps(agreement(args)), flush=True)
        return
    if args.one:
        print(json.dumps(run_one(args)), flush=True)
        return
    results = []
    for spec in args.runtimes.split(","):
        name, _, version = spec.partition("@")
        command = [sys.executable, __file__, *sys.argv[1:], "--one", name, "--prompt", version or "2"]
        child = subprocess.run(command, capture_output=True, text=True, check=False, env=os.environ)
        lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
        if child.returncode or not lines:
            print(f"{spec}: failed: {(child.stderr.strip().splitlines() or ['?'])[-1]}", file=sys.stderr)
            continue
        results.append(json.loads(lines[-1]))
        print(lines[-1], flush=True)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
