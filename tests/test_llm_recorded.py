"""OpenAICompatLLM against a recorded exchange with a real server engine (llama-cpp-python's server running the
packaged Q4_K_M GGUF of qwen2.5-coder-0.5b-instruct), replayed byte for byte from a server on 127.0.0.1.

The recording (tests/data/llamacpp_exchange.json) was made with
``python -m llmrec.llm.serve record http://127.0.0.1:8080/v1 qwen2.5-coder-0.5b-instruct OUT --engine ...``;
docs/serving.md says how. Everything here is the engine's own format: its logprobs, its server-sent events, its
HTTP 500 for a ``json_schema`` response format and its grammar-constrained JSON. The streamed text differs from
the plain one after ten tokens: that is the engine (greedy both times, but a prompt just evaluated is
reused and only its last token recomputed, which tips a near tie), not the parsing.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from llmrec.llm.openai_http import OpenAICompatLLM
from llmrec.llm.serve import RECORD_EXPLAIN, RECORD_MESSAGES, RECORD_SCHEMA, record

RECORDING = json.loads((Path(__file__).parent / "data" / "llamacpp_exchange.json").read_text(encoding="utf-8"))
EXCHANGE: list[dict[str, Any]] = RECORDING["exchange"]
MODEL = RECORDING["model"]


class Replay(ThreadingHTTPServer):
    """Answers each request with the recorded response to the same request body; anything else is a 599."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ReplayHandler)
        self.bodies: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class ReplayHandler(BaseHTTPRequestHandler):
    server: Replay

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        match = next((e for e in EXCHANGE if e["request"] == body and self.path == "/v1/chat/completions"), None)
        status, content_type, data = (
            (match["status"], match["content_type"], match["body"].encode())
            if match
            else (599, "text/plain", b"not in the recording")
        )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def replay() -> Iterator[Replay]:
    srv = Replay()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def recorded(predicate: Any) -> dict[str, Any]:
    (entry,) = [e for e in EXCHANGE if predicate(e["request"])]
    return entry


def test_the_recording_is_a_real_engines_and_holds_every_kind_of_call():
    assert "llama-cpp-python" in RECORDING["engine"] and MODEL == "qwen2.5-coder-0.5b-instruct"
    kinds = [("logprobs" in e["request"], bool(e["request"].get("stream")), "response_format" in e["request"])
             for e in EXCHANGE]  # fmt: skip
    assert sorted(kinds) == sorted([(True, False, False), (False, False, False), (False, True, False),
                                    (False, False, True), (False, False, True)])  # fmt: skip
    assert all(e["status"] == 200 for e in EXCHANGE if "response_format" not in e["request"])


@pytest.mark.network
def test_scores_are_the_engines_top_logprobs_of_each_letter(replay):
    scores = OpenAICompatLLM(replay.url, MODEL).score_options(RECORD_MESSAGES, ["A", "B", "C"])
    reply = json.loads(recorded(lambda r: "logprobs" in r)["body"])
    (first,) = reply["choices"][0]["logprobs"]["content"]  # max_tokens 1: one token
    top = {t["token"]: t["logprob"] for t in first["top_logprobs"]}
    assert len(top) >= 20
    expected = [max(top.get(o, -math.inf), top.get(f" {o}", -math.inf)) for o in "ABC"]
    assert all(math.isfinite(x) for x in expected)  # every letter is among the engine's top tokens
    assert scores.tolist() == pytest.approx(expected, rel=1e-6)
    assert scores.tolist() == pytest.approx(RECORDING["results"]["scores"], rel=1e-6)


@pytest.mark.network
def test_text_and_its_stream_are_the_engines(replay):
    llm = OpenAICompatLLM(replay.url, MODEL)
    text = llm.generate(RECORD_EXPLAIN, 24)
    pieces = list(llm.stream(RECORD_EXPLAIN, 24))
    plain = json.loads(recorded(lambda r: "max_tokens" in r and r["max_tokens"] == 24 and not r.get("stream"))["body"])
    assert text == plain["choices"][0]["message"]["content"] == RECORDING["results"]["text"]
    assert text.startswith("Aliens (1986) is a")
    events = [line for line in recorded(lambda r: r.get("stream"))["body"].splitlines() if line.startswith("data:")]
    assert events[-1].strip() == "data: [DONE]"
    deltas = [c["delta"].get("content") for e in events[:-1] for c in json.loads(e[5:])["choices"]]
    assert pieces == [d for d in deltas if d] == RECORDING["results"]["stream"]
    assert len(pieces) == 24 and "".join(pieces).startswith("Aliens (1986) is a")  # one piece per token


@pytest.mark.network
def test_json_replies_fall_back_to_the_engines_json_object_form_and_follow_the_schema(replay):
    llm = OpenAICompatLLM(replay.url, MODEL)
    text = llm.generate_json([{"role": "user", "content": "I loved Alien, why did you pick Heat?"}], RECORD_SCHEMA, 40)
    assert [b["response_format"]["type"] for b in replay.bodies] == ["json_schema", "json_object"]
    rejected = recorded(lambda r: r.get("response_format", {}).get("type") == "json_schema")
    assert rejected["status"] == 500 and "response_format" in rejected["body"]  # the engine's answer
    assert text == RECORDING["results"]["json"]
    value = json.loads(text)
    assert value["intent"] in ("recommend", "why", "other") and isinstance(value["titles"], list)


@pytest.mark.network
def test_record_replayed_reproduces_the_recording(replay, tmp_path):
    out = tmp_path / "again.json"
    record(replay.url, MODEL, out, engine=RECORDING["engine"])
    again = json.loads(out.read_text(encoding="utf-8"))
    assert again["results"] == RECORDING["results"]
    assert [e["request"] for e in again["exchange"]] == [e["request"] for e in EXCHANGE]
