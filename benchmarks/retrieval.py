"""Retrieval benchmarks (BENCHMARKS-retrieval.md): index build, vector query latency/recall, retrieval quality.

    .venv/bin/python benchmarks/retrieval.py --data-dir ../shared/data --json /tmp/retrieval.json
    .venv/bin/python benchmarks/retrieval.py --sections latency --sizes 10000,100000 --max-build-seconds 300

Sections
- build: ``build_index`` of every ml-latest-small movie into a fresh Chroma store with all-MiniLM-L6-v2
  (embedding and store time split), against plain ``SentenceTransformer.encode`` on the same texts
  (the first ``--encode-sample`` of them).
- latency: top-50 query latency p50/p99 over synthetic clustered 384-d unit vectors at each size,
  Chroma (embedded, HNSW, cosine) vs exact numpy (``MemoryIndex``), and Chroma's recall@50 against
  the exact answer. Chroma inserts stop at ``--max-build-seconds``; the size reached is reported.
- realrecall: the same comparison on the built store's real MiniLM vectors (queries: item vectors, and
  means of 20 random items as stand-ins for profile queries).
- quality: leave-one-out on ml-latest-small after the 5-core filter (test item = last; input =
  train+valid, all of it masked); Recall@20/50 of the text, cf (EASE) and hybrid (RRF) retrievers,
  the hybrid with equal weights and with the service's text weight (chosen on the validation item).
  Text retrieval searches the 5-core items (the only possible targets), copied from the built store.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.data import load_dataset, preprocess
from llmrec.embedding import DEFAULT_EMBEDDER, get_embedder, packaged_minilm_path
from llmrec.index import MemoryIndex, StoreSpec, open_chroma_index
from llmrec.indexing import build_index, open_store, store_spec
from llmrec.types import HistoryEntry, UserProfile

log = logging.getLogger("benchmarks.retrieval")
TEXT_WEIGHT = 0.25  # the service's hybrid weight for text vs cf, chosen on the validation item (see the .md)


class TimedEmbedder:
    """Wraps an embedder and adds up the seconds spent embedding."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.seconds = 0.0

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            self.seconds += time.perf_counter() - started


def bench_build(args: argparse.Namespace) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer

    from llmrec.data.item_text import item_text

    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    texts = [item_text(item) for item in ds.items.values()]
    sample = texts[: args.encode_sample]
    model = SentenceTransformer(str(packaged_minilm_path(args.cache_dir)), device="cpu", local_files_only=True)
    model.encode(["warm up"])
    started = time.perf_counter()
    model.encode(sample, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    plain = time.perf_counter() - started
    log.info("plain encode: %d texts in %.1f s", len(sample), plain)

    emb = TimedEmbedder(get_embedder(DEFAULT_EMBEDDER, cache_dir=args.cache_dir))
    emb.embed(["warm up"])
    emb.seconds = 0.0
    index = open_store(ds.name, emb, cache_dir=args.cache_dir, rebuild=True)
    report = build_index(ds, emb, index, batch_size=args.batch_size)
    log.info("build_index: %s", report)
    again = build_index(ds, emb, index)
    return {
        "items": len(texts),
        "encode_sample": len(sample),
        "plain_encode_s": plain,
        "plain_encode_items_per_s": len(sample) / plain,
        "build_s": report.seconds,
        "build_items_per_s": report.embedded / report.seconds,
        "build_embed_s": emb.seconds,
        "build_store_and_rest_s": report.seconds - emb.seconds,
        "rerun_unchanged_s": again.seconds,
        "store": report.location,
    }


def clustered(n: int, dim: int, rng: np.random.Generator, centers: int = 1000) -> np.ndarray:
    """Unit vectors around ``centers`` random directions (closer to real embeddings than uniform noise)."""
    middle = rng.standard_normal((centers, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        out[s : s + m] = middle[rng.integers(0, centers, m)] + 0.6 * rng.standard_normal((m, dim)).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def bench_latency(args: argparse.Namespace, size: int, rng: np.random.Generator) -> dict[str, Any]:
    dim, k = 384, 50
    vectors = clustered(size, dim, rng)
    queries = clustered(args.queries, dim, rng)
    ids = [str(i) for i in range(size)]
    spec = StoreSpec("synthetic", dim, "none")
    exact = MemoryIndex(spec)
    exact.upsert(ids, vectors, [""] * size, [{}] * size)
    exact_times, truth = [], []
    for q in queries:
        started = time.perf_counter()
        truth.append({h.item_id for h in exact.query(q, k)})
        exact_times.append(time.perf_counter() - started)
    del exact

    folder = Path(tempfile.mkdtemp(prefix=f"chroma-{size}-", dir=args.work_dir))
    chroma = open_chroma_index(spec, path=folder)
    started = time.perf_counter()
    inserted = 0
    step = 5000
    with chroma.writing():
        while inserted < size and time.perf_counter() - started < args.max_build_seconds:
            stop = min(size, inserted + step)
            n = stop - inserted
            chroma.upsert(ids[inserted:stop], vectors[inserted:stop], [""] * n, [{}] * n)
            inserted = stop
    build = time.perf_counter() - started
    log.info("chroma: %d of %d vectors inserted in %.1f s", inserted, size, build)
    result: dict[str, Any] = {"size": size, "exact_numpy": percentiles(exact_times), "chroma_inserted": inserted,
                              "chroma_build_s": build, "chroma_inserts_per_s": inserted / build}  # fmt: skip
    if inserted == size:
        chroma.query(queries[0], k)  # first query loads the HNSW segment
        chroma_times, recalls = [], []
        for q, expected in zip(queries, truth):
            started = time.perf_counter()
            got = {h.item_id for h in chroma.query(q, k)}
            chroma_times.append(time.perf_counter() - started)
            recalls.append(len(got & expected) / k)
        result["chroma"] = percentiles(chroma_times)
        result["chroma_recall@50"] = float(np.mean(recalls))
        result["chroma_disk_mb"] = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
    shutil.rmtree(folder, ignore_errors=True)
    return result


def bench_quality(args: argparse.Namespace) -> dict[str, Any]:
    from llmrec.baselines import get_scorer
    from llmrec.evaluation.protocols import loo_split
    from llmrec.retrieval.collaborative import CollaborativeRetriever
    from llmrec.retrieval.fusion import HybridRetriever
    from llmrec.retrieval.text import TextRetriever

    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    seq = preprocess(ds)
    emb = get_embedder(DEFAULT_EMBEDDER, cache_dir=args.cache_dir)
    store = open_store(ds.name, emb, cache_dir=args.cache_dir)
    if store.count() != len(ds.items):
        build_index(ds, emb, store)
    core = MemoryIndex(store_spec(emb))
    vectors = store.get_vectors(list(seq.item_ids))
    core.upsert(list(vectors), np.stack(list(vectors.values())), [""] * len(vectors), [{}] * len(vectors))
    started = time.perf_counter()
    ease = get_scorer("ease").fit(loo_split(seq, mask_window=None).final_train)
    fit_s = time.perf_counter() - started
    text = TextRetriever(core, emb, items=ds.items)
    cf = CollaborativeRetriever(ease, seq, label="EASE", items=ds.items)
    retrievers = {
        "text": text,
        "cf (EASE)": cf,
        "hybrid (RRF, equal weights)": HybridRetriever([text, cf]),
        f"hybrid (RRF, text weight {TEXT_WEIGHT})": HybridRetriever([text, cf], weights=(TEXT_WEIGHT, 1.0)),
    }
    dialogues = Path(args.data_dir) / "redial" / "train.jsonl.gz"
    if dialogues.exists():  # the chat's default since issue 14: the dialogue scorer beside text and cf
        from llmrec.retrieval.dialogue import load_dialogue_scorer

        ids, counts = np.unique(ds.interactions.item_ids, return_counts=True)
        scorer = load_dialogue_scorer(dialogues, ds.items, dict(zip(ids.tolist(), counts.tolist())))
        dialogue = scorer.retriever(ds.items)
        for weight in (1.0, 0.25):
            retrievers[f"hybrid (text {TEXT_WEIGHT}, cf 1, dialogue {weight:g})"] = HybridRetriever(
                [text, cf, dialogue], weights=(TEXT_WEIGHT, 1.0, weight))
    ks = (20, 50)
    hits = {name: {k: 0 for k in ks} for name in retrievers}
    seconds = dict.fromkeys(retrievers, 0.0)
    for u in range(seq.n_users):
        inputs = seq.test_input(u)
        history = tuple(
            HistoryEntry(seq.item_ids[i], None if np.isnan(r) else float(r), int(t))
            for i, r, t in zip(inputs, seq.ratings[u][:-1], seq.timestamps[u][:-1])
        )
        profile = UserProfile(user_id=seq.user_ids[u], history=history)
        target = seq.item_ids[seq.test_target(u)]
        for name, retriever in retrievers.items():
            started = time.perf_counter()
            ranked = [c.item_id for c in retriever.retrieve(profile, max(ks))]
            seconds[name] += time.perf_counter() - started
            for k in ks:
                hits[name][k] += target in ranked[:k]
    n = seq.n_users
    return {
        "users": n,
        "items": seq.n_items,
        "ease_fit_s": fit_s,
        "recall": {name: {f"recall@{k}": hits[name][k] / n for k in ks} for name in retrievers},
        "ms_per_user": {name: 1000 * seconds[name] / n for name in retrievers},
    }


def bench_real_recall(args: argparse.Namespace) -> dict[str, Any]:
    """Chroma's recall@50 and latency on the real MiniLM item vectors of the built store, vs exact search."""
    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    emb = get_embedder(DEFAULT_EMBEDDER, cache_dir=args.cache_dir)
    store = open_store(ds.name, emb, cache_dir=args.cache_dir)
    if store.count() != len(ds.items):
        build_index(ds, emb, store)
    stored = store.get_vectors(store.ids())
    ids, matrix = list(stored), np.stack(list(stored.values()))
    rng = np.random.default_rng(args.seed)
    item_queries = matrix[rng.choice(len(ids), args.queries, replace=False)]
    picks = [rng.choice(len(ids), 20, replace=False) for _ in range(args.queries)]
    profile_queries = np.stack([matrix[p].mean(axis=0) for p in picks])
    profile_queries /= np.linalg.norm(profile_queries, axis=1, keepdims=True)
    out: dict[str, Any] = {"items": len(ids)}
    for name, queries in (("item vectors", item_queries), ("mean of 20 random items", profile_queries)):
        store.query(queries[0], 50)
        times, recalls = [], []
        for q in queries:
            expected = {ids[i] for i in np.argsort(-(matrix @ q), kind="stable")[:50]}
            started = time.perf_counter()
            got = {h.item_id for h in store.query(q, 50)}
            times.append(time.perf_counter() - started)
            recalls.append(len(got & expected) / 50)
        out[name] = {**percentiles(times), "recall@50": float(np.mean(recalls))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--cache-dir", default=None, help="where the benchmark's store and prepared model go")
    parser.add_argument("--work-dir", default=None, help="scratch folder for the synthetic Chroma stores")
    parser.add_argument("--sections", default="build,latency,realrecall,quality")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--max-build-seconds", type=float, default=600.0)
    parser.add_argument("--encode-sample", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.cache_dir is None:
        args.cache_dir = str(Path(tempfile.gettempdir()) / "llmrec-bench-cache")
    sections = set(args.sections.split(","))
    out: dict[str, Any] = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                           "load_average_at_start": os.getloadavg()}  # fmt: skip
    if "build" in sections:
        out["build"] = bench_build(args)
        print(json.dumps({"build": out["build"]}, indent=2), flush=True)
    if "latency" in sections:
        rng = np.random.default_rng(args.seed)
        out["latency"] = []
        for size in (int(s) for s in args.sizes.split(",")):
            out["latency"].append(bench_latency(args, size, rng))
            print(json.dumps(out["latency"][-1], indent=2), flush=True)
    if "realrecall" in sections:
        out["realrecall"] = bench_real_recall(args)
        print(json.dumps({"realrecall": out["realrecall"]}, indent=2), flush=True)
    if "quality" in sections:
        out["quality"] = bench_quality(args)
        print(json.dumps({"quality": out["quality"]}, indent=2), flush=True)
    out["load_average_at_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
