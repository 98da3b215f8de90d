"""First start: embedding throughput by runtime, store build, and time from an empty cache to a recommendation.

    .venv/bin/python benchmarks/first_start.py --sections throughput --sample 1000
    .venv/bin/python benchmarks/first_start.py --sections build,recommend,app --work-dir /tmp/fs
    .venv/bin/python benchmarks/first_start.py --sections recommend --old-src /tmp/fs/old   # the code before

Sections (every figure printed with the machine's load average; results as JSON with ``--json``)
- throughput: items/s embedding the first ``--sample`` ml-latest-small item texts with today's path
  (sentence-transformers on torch, batches of 64 in catalogue order), the same sorted by length, ONNX Runtime
  float32 and int8 (dynamic quantisation) and OpenVINO float32 (when ``openvino`` imports; ``--openvino-path``
  adds a folder to ``sys.path``) from one ONNX export of the packaged weights; cosine with today's vectors
  and the overlap of top-10 neighbours (100 queries) for each.
- build: ``index_dataset`` of ml-latest-small into a fresh store, with the shipped vectors and (when
  ``--build-computed``) without them; store size on disk.
- recommend: ``llmrec recommend ml-latest-small --query "slow sci-fi" --ranker passthrough`` on an empty cache,
  wall time of the process (``--old-src`` runs the same command from an older source tree).
- app: the chat app on the real pipeline (passthrough ranker, template explanations) on an empty cache, in a
  process of its own: imports, greeting, warm-up done, first cards (a genre chip, then "Just recommend").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("benchmarks.first_start")


def load() -> str:
    return os.popen("uptime").read().strip().split("load average:")[-1].strip()


def item_texts(data_dir: str) -> list[str]:
    from llmrec.data import load_dataset
    from llmrec.data.item_text import item_text

    ds = load_dataset("ml-latest-small", data_dir=data_dir)
    return [item_text(item) for item in ds.items.values()]


# -- throughput ---------------------------------------------------------------------------------------------
def _onnx_export(model_dir: Path, out: Path) -> float:
    """One float32 ONNX export of the packaged BERT (legacy TorchScript exporter: no onnxscript needed)."""
    import torch
    from transformers import AutoModel

    started = time.perf_counter()
    model = AutoModel.from_pretrained(str(model_dir)).eval()

    class Hidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state  # fmt: skip

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(torch.ones(2, 16, dtype=torch.long) for _ in names)
    torch.onnx.export(Hidden(model), example, str(out), input_names=names, output_names=["hidden"],
                      dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "hidden"]}, opset_version=17,
                      dynamo=False)  # fmt: skip
    return time.perf_counter() - started


def _pooled(run, tokenizer, texts: list[str], batch: int = 64) -> np.ndarray:
    """Mean pooling + L2 norm (what the model's sentence-transformers modules do), length-sorted batches."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), 384), np.float32)
    for s in range(0, len(texts), batch):
        rows = order[s : s + batch]
        enc = tokenizer.encode_batch([texts[r] for r in rows])
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        hidden = run(ids, mask)
        pooled = (hidden * mask[..., None]).sum(1) / np.clip(mask.sum(1, keepdims=True), 1e-9, None)
        out[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    return out


def _agreement(vectors: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    cos = (vectors * reference).sum(axis=1)
    queries = reference[:100]
    top_ref = np.argsort(-(queries @ reference.T), axis=1)[:, :10]
    top_new = np.argsort(-(vectors[:100] @ vectors.T), axis=1)[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_ref, top_new)])
    return {"cosine_min": round(float(cos.min()), 5), "cosine_mean": round(float(cos.mean()), 5),
            "share_below_0.99": round(float((cos < 0.99).mean()), 4),
            "top10_overlap": round(float(overlap), 3)}  # fmt: skip


def throughput(args: argparse.Namespace) -> list[dict[str, Any]]:
    from tokenizers import Tokenizer

    from llmrec.embedding import get_embedder

    texts = item_texts(args.data_dir)[: args.sample]
    emb = get_embedder("all-minilm-l6-v2", cache_dir=args.cache_dir)
    emb.embed(texts[:8])  # load the model outside the clock
    rows: list[dict[str, Any]] = []

    def timed(name: str, fn, reference: np.ndarray | None = None, **extra: Any) -> np.ndarray:
        started, before = time.perf_counter(), load()
        vectors = fn()
        seconds = time.perf_counter() - started
        row = {"runtime": name, "items": len(texts), "seconds": round(seconds, 1),
               "items_per_s": round(len(texts) / seconds, 1), "load_before": before, "load_after": load(),
               **extra}  # fmt: skip
        if reference is not None:
            row.update(_agreement(vectors, reference))
        log.info("%s", row)
        rows.append(row)
        return vectors

    def in_catalogue_order() -> np.ndarray:
        return np.concatenate([emb.embed(texts[s : s + 64]) for s in range(0, len(texts), 64)])

    reference = timed("torch, batches of 64 in catalogue order (before)", in_catalogue_order)
    order = np.argsort([len(t) for t in texts], kind="stable")
    sorted_vectors = timed("torch, sorted by length (now)", lambda: emb.embed([texts[i] for i in order]))
    rows[-1].update(_agreement(sorted_vectors[np.argsort(order)], reference))

    work = Path(args.work_dir) / "onnx"
    work.mkdir(parents=True, exist_ok=True)
    fp32 = work / "minilm.onnx"
    export_s = _onnx_export(emb.path, fp32)
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    started = time.perf_counter()
    int8 = work / "minilm-int8.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"])  # fmt: skip
    quantise_s = time.perf_counter() - started
    tokenizer = Tokenizer.from_file(str(emb.path / "tokenizer.json"))
    tokenizer.enable_truncation(256)
    tokenizer.enable_padding()
    variants = [(fp32, "ONNX Runtime float32", {"export_s": round(export_s, 1)}),
                (int8, "ONNX Runtime int8 (dynamic, per channel)", {"quantise_s": round(quantise_s, 1)})]
    for path, name, extra in variants:
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        run = lambda ids, mask, s=session: s.run(None, {"input_ids": ids, "attention_mask": mask,  # noqa: E731
                                                        "token_type_ids": np.zeros_like(ids)})[0]  # fmt: skip
        timed(name, lambda run=run: _pooled(run, tokenizer, texts), reference, **extra)
    if args.openvino_path:
        sys.path.insert(0, args.openvino_path)
    try:
        import openvino as ov
    except ImportError:
        log.info("openvino is not installed: skipped")
        return rows
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(fp32)), "CPU", {"INFERENCE_NUM_THREADS": args.threads})
    request = compiled.create_infer_request()
    run = lambda ids, mask: request.infer({"input_ids": ids, "attention_mask": mask,  # noqa: E731
                                           "token_type_ids": np.zeros_like(ids)})[compiled.output(0)]  # fmt: skip
    timed(f"OpenVINO {ov.__version__.split('-')[0]} float32", lambda: _pooled(run, tokenizer, texts), reference)
    return rows


# -- build, recommend, app ----------------------------------------------------------------------------------
def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _models_only_cache(work: Path, name: str) -> Path:
    cache = work / name
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    return cache


def build(args: argparse.Namespace) -> list[dict[str, Any]]:
    from llmrec.pipeline.stores import index_dataset

    rows = []
    for shipped in (True, False) if args.build_computed else (True,):
        cache = _models_only_cache(Path(args.work_dir), f"build-{'shipped' if shipped else 'computed'}")
        before = load()
        started = time.perf_counter()
        report = index_dataset("ml-latest-small", data_dir=args.data_dir, cache_dir=cache, shipped=shipped)
        row = {"shipped_vectors": shipped, "seconds": round(time.perf_counter() - started, 1),
               "build_seconds": round(report.seconds, 1), "embedded": report.embedded - report.precomputed,
               "copied": report.precomputed, "store_mb": round(_du(Path(report.location)) / 1e6, 1),
               "load_before": before, "load_after": load()}  # fmt: skip
        log.info("%s", row)
        rows.append(row)
    return rows


def _timed_process(command: list[str], env: dict[str, str] | None = None, timeout: float = 1800,
                   cwd: Path = REPO) -> dict[str, Any]:  # fmt: skip
    before = load()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        log.error("failed: %s\n%s", " ".join(command), done.stderr[-3000:])
    return {"seconds": round(seconds, 1), "returncode": done.returncode, "stdout": done.stdout[-4000:],
            "stderr_tail": done.stderr[-600:], "load_before": before, "load_after": load()}  # fmt: skip


def recommend(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    trees = [("now", None)] + ([("before", args.old_src)] if args.old_src else [])
    for label, src in trees:
        cache = _models_only_cache(Path(args.work_dir), f"recommend-{label}")
        command = [sys.executable, "-m", "llmrec.cli", "recommend", "ml-latest-small", "--data-dir",
                   str(Path(args.data_dir).resolve()), "--query", "slow sci-fi", "--cache-dir", str(cache),
                   "--ranker", "passthrough", "--json"]  # fmt: skip
        tree = Path(src).resolve() if src else REPO  # `python -m` puts the working folder first on sys.path
        row = {"code": label, **_timed_process(command, {**os.environ, "PYTHONPATH": str(tree)}, cwd=tree)}
        row["first_lines"] = row.pop("stdout")[:300]
        stores = cache / "stores"
        row["store_mb"] = round(_du(stores) / 1e6, 1) if stores.exists() else None
        log.info("%s", {k: v for k, v in row.items() if k != "stderr_tail"})
        rows.append(row)
    return rows


# The app, in a process of its own (so the clock includes every import): build it on the real pipeline, open a
# session, wait for the warm-up, then onboard by a genre chip and "Just recommend" (the app's first cards).
APP_CHILD = """
import json, sys, time
started = time.perf_counter()
from pathlib import Path
import gradio_client
from llmrec.config import RecommenderConfig
from llmrec.pipeline import Recommender
from ui.app import AppSettings, build_app, launch
from ui_server import free_port, view
data_dir, cache, store = sys.argv[1:4]
config = RecommenderConfig().updated(data={"dataset": "ml-latest-small", "data_dir": data_dir}, cache_dir=cache,
                                     ranker={"kind": "passthrough"}, explainer={"kind": "template"})
imported = time.perf_counter() - started
app = build_app(lambda: Recommender(config), Path(store), AppSettings(dataset_label="ml-latest-small"))
url = launch(app, "127.0.0.1", free_port(), block=False, quiet=True)
client = gradio_client.Client(url, verbose=False)
client.predict(api_name="/start")
greeting = time.perf_counter() - started
service = app.llmrec_service
while service.loading:
    time.sleep(0.2)
ready = time.perf_counter() - started
client.predict("Sci-Fi", api_name="/send")
out = view(client.predict("Just recommend", api_name="/send"), with_message=True)
first = time.perf_counter() - started
app.close()
print(json.dumps({"imports_s": round(imported, 1), "greeting_s": round(greeting, 1), "ready_s": round(ready, 1),
                  "first_recommendations_s": round(first, 1), "status": service.status()[0],
                  "cards": [c["title"] for c in out["cards"]]}))
"""


def app(args: argparse.Namespace) -> dict[str, Any]:
    cache = _models_only_cache(Path(args.work_dir), "app")
    store = Path(args.work_dir) / "app-profiles.sqlite"
    store.unlink(missing_ok=True)
    command = [sys.executable, "-c", APP_CHILD, args.data_dir, str(cache), str(store)]
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"}
    row = _timed_process(command, env)
    with contextlib.suppress(ValueError, IndexError):
        row.update(json.loads(row.pop("stdout").strip().splitlines()[-1]))
    log.info("%s", {k: v for k, v in row.items() if k != "stderr_tail"})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--cache-dir", default=None, help="where the prepared embedder is (throughput only)")
    parser.add_argument("--work-dir", default="/tmp/llmrec-first-start")
    parser.add_argument("--sections", default="throughput,build,recommend,app")
    parser.add_argument("--sample", type=int, default=1000, help="texts for the throughput section")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--openvino-path", default=None)
    parser.add_argument("--build-computed", action="store_true", help="also build without the shipped vectors")
    parser.add_argument("--old-src", default=None, help="a source tree of older llmrec code to compare with")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_at_start": load()}
    for section in args.sections.split(","):
        results[section] = {"throughput": throughput, "build": build, "recommend": recommend, "app": app}[section](args)
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
