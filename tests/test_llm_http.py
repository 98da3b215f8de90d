"""OpenAICompatLLM against a fake OpenAI-compatible server on 127.0.0.1: scoring, text, streaming, failures."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from fixtures_catalog import ITEMS, PROFILE, candidates
from llmrec.config import RecommenderConfig
from llmrec.errors import ConfigError, ModelError
from llmrec.llm.base import LLM
from llmrec.llm.openai_http import OpenAICompatLLM
from llmrec.pipeline import Recommender
from llmrec.ranking import LLMRanker

MESSAGES = [{"role": "user", "content": "Which one? Answer with a letter."}]
KEY = "sk-test-secret-123"


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict[str, Any]] = []
        self.mode = "ok"  # ok | 500 | garbage | close-midstream | error-event | slow | fastapi-422
        self.top_logprobs: list[dict[str, Any]] = []
        self.text = "A fine pick."
        self.pieces = ["You ", "liked ", "space."]
        self.rejected_formats: tuple[str, ...] = ()  # response_format types answered with an error

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out and hung up is expected here; anything else is reported."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _event(self, payload: Any) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        self.wfile.write(f"data: {data}\n\n".encode())
        self.wfile.flush()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = self.headers.get("Authorization")
        self.server.requests.append({"path": self.path, "auth": auth, "body": body})
        mode = self.server.mode
        if self.path != "/v1/chat/completions":
            return self._send(404, b'{"error": {"message": "not found"}}')
        if mode == "slow":
            time.sleep(2.0)
        if mode == "500":  # echoes the key back, as a careless server might
            return self._send(500, json.dumps({"error": {"message": f"boom (got {auth})"}}).encode())
        if mode == "garbage":
            return self._send(200, b"<html>not json")
        if (body.get("response_format") or {}).get("type") in self.server.rejected_formats:
            if mode == "fastapi-422":
                detail = [{"type": "literal_error", "loc": ["body", "response_format", "type"],
                           "msg": "Input should be 'text' or 'json_object'", "input": "json_schema"}]  # fmt: skip
                return self._send(422, json.dumps({"detail": detail}).encode())
            # llama-cpp-python 0.3.36's server: its validation error, traceback and all, as HTTP 500
            message = (
                "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'),"
                " 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}\n\n  File "
                '"/x/llama_cpp/server/app.py", line 376, in create_chat_completion\n    POST /v1/chat/completions'
            )
            error = {"message": message, "type": "internal_server_error", "param": None, "code": None}
            return self._send(500, json.dumps({"error": error}).encode())
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()  # HTTP/1.0, no length: the body ends when the connection closes
            self.wfile.write(b": keep-alive comment\n\n")
            for n, piece in enumerate(self.server.pieces):
                self._event({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
                if n == 0 and mode == "close-midstream":
                    return
                if n == 0 and mode == "error-event":
                    return self._event({"error": {"message": "CUDA out of memory"}})
            self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            return self._event("[DONE]")
        if body.get("logprobs"):
            content = [{"token": "?", "logprob": -0.1, "top_logprobs": self.server.top_logprobs}]
            message = {"role": "assistant", "content": "?"}
            choice = {"index": 0, "message": message, "logprobs": {"content": content}, "finish_reason": "length"}
        else:
            message = {"role": "assistant", "content": self.server.text}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
        self._send(200, json.dumps({"id": "x", "object": "chat.completion", "choices": [choice]}).encode())


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def top(**logprobs: float) -> list[dict[str, Any]]:
    """top_logprobs entries; a leading underscore in a key stands for a leading space (``_A`` -> " A")."""
    return [{"token": k.replace("_", " "), "logprob": v, "bytes": None} for k, v in logprobs.items()]


@pytest.mark.network
def test_scores_map_to_options_and_missing_ones_get_a_floor_below_all(server):
    server.top_logprobs = top(C=-0.5, _A=-1.0, A=-3.0, B=-2.0, hello=-4.0)
    llm = OpenAICompatLLM(server.url, "llmrec")
    scores = llm.score_options(MESSAGES, ["A", "B", "C", "D", "E"])
    assert scores.dtype == np.float32
    assert scores[:3].tolist() == [-1.0, -2.0, -0.5]  # " A" beats "A": the max of the two spellings
    assert scores[3] == scores[4] < -4.0  # below every observed logprob, "hello" included
    assert np.all(np.isfinite(scores))
    assert isinstance(llm, LLM)


@pytest.mark.network
def test_scoring_request_asks_for_one_token_with_logprobs_and_sends_the_key(server):
    server.top_logprobs = top(A=-1.0)
    OpenAICompatLLM(server.url, "llmrec", api_key=KEY).score_options(MESSAGES, ["A", "B"])
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == f"Bearer {KEY}"
    body = request["body"]
    assert (body["max_tokens"], body["temperature"], body["logprobs"], body["top_logprobs"]) == (1, 0, True, 20)
    assert body["model"] == "llmrec"
    assert body["messages"] == MESSAGES


@pytest.mark.network
def test_key_comes_from_the_environment_and_never_appears_in_errors(server, monkeypatch):
    monkeypatch.setenv("LLMREC_LLM_API_KEY", KEY)
    server.mode = "500"
    llm = OpenAICompatLLM(server.url, "llmrec")
    with pytest.raises(ModelError) as caught:
        llm.generate(MESSAGES)
    assert server.requests[0]["auth"] == f"Bearer {KEY}"
    message = str(caught.value)
    assert KEY not in message
    assert server.url in message and "500" in message and "boom" in message
    assert "\n" not in message


@pytest.mark.network
def test_no_key_sends_no_authorization_header(server, monkeypatch):
    monkeypatch.delenv("LLMREC_LLM_API_KEY", raising=False)
    OpenAICompatLLM(server.url, "llmrec").generate(MESSAGES)
    assert server.requests[0]["auth"] is None


@pytest.mark.network
def test_ranker_over_the_server_follows_the_logprobs(server):
    server.top_logprobs = top(C=-0.5, _A=-1.0, B=-2.0, Z=-3.0)  # D (item 8) is absent: it goes last
    ranker = LLMRanker(OpenAICompatLLM(server.url, "llmrec"), ITEMS)
    cands = candidates(["3", "5", "7", "8"])
    ranked = ranker.rank(PROFILE, cands, 4)
    assert [c.item_id for c in ranked] == ["7", "3", "5", "8"]
    assert ranker.last_note == ""  # scored by the model, not the retrieval-order fallback
    assert all(c.evidence.stage_scores[-1][0] == "llm" for c in ranked)
    prompt = server.requests[-1]["body"]["messages"]
    assert any("Finding Nemo" in m["content"] for m in prompt)


@pytest.mark.network
def test_generate_returns_the_text_and_null_content_is_empty(server):
    llm = OpenAICompatLLM(server.url, "llmrec")
    assert llm.generate(MESSAGES, max_new_tokens=33) == "A fine pick."
    body = server.requests[0]["body"]
    assert body["max_tokens"] == 33 and body["temperature"] == 0 and not body.get("stream")
    server.text = None
    assert llm.generate(MESSAGES) == ""


@pytest.mark.network
def test_stream_yields_the_pieces_in_order(server):
    pieces = list(OpenAICompatLLM(server.url, "llmrec").stream(MESSAGES, max_new_tokens=20))
    assert pieces == ["You ", "liked ", "space."]
    assert server.requests[0]["body"]["stream"] is True


@pytest.mark.network
@pytest.mark.parametrize(("mode", "call", "says"), [
    ("close-midstream", "stream", "closed the stream"),
    ("error-event", "stream", "CUDA out of memory"),
    ("500", "stream", "HTTP 500"),
    ("500", "score", "HTTP 500"),
    ("garbage", "generate", "malformed JSON"),
    ("garbage", "score", "malformed JSON"),
])  # fmt: skip
def test_server_failures_become_one_line_model_errors_naming_the_url(server, mode, call, says):
    server.mode = mode
    server.top_logprobs = top(A=-1.0)
    llm = OpenAICompatLLM(server.url, "llmrec")
    run = {"stream": lambda: list(llm.stream(MESSAGES)), "generate": lambda: llm.generate(MESSAGES),
           "score": lambda: llm.score_options(MESSAGES, ["A"])}[call]  # fmt: skip
    with pytest.raises(ModelError) as caught:
        run()
    message = str(caught.value)
    assert server.url in message and says in message and "\n" not in message


@pytest.mark.network
def test_a_reply_without_logprobs_is_a_model_error(server):
    server.top_logprobs = []
    with pytest.raises(ModelError, match="logprobs"):
        OpenAICompatLLM(server.url, "llmrec").score_options(MESSAGES, ["A"])


@pytest.mark.network
def test_the_timeout_is_respected(server):
    server.mode = "slow"
    started = time.monotonic()
    with pytest.raises(ModelError, match=r"did not answer within 0\.3s"):
        OpenAICompatLLM(server.url, "llmrec", timeout=0.3).generate(MESSAGES)
    assert time.monotonic() - started < 1.5


def test_nothing_listening_fails_fast_with_the_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    started = time.monotonic()
    with pytest.raises(ModelError) as caught:
        OpenAICompatLLM(url, "llmrec", timeout=30).generate(MESSAGES)
    assert time.monotonic() - started < 5
    assert url in str(caught.value) and "unreachable" in str(caught.value) and "--llm-url" in str(caught.value)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/v1", "file:///etc/passwd", "127.0.0.1:8000/v1", "http://"])
def test_only_http_urls_are_accepted(url):
    with pytest.raises(ConfigError) as caught:
        OpenAICompatLLM(url, "llmrec")
    assert url in str(caught.value) and "http://127.0.0.1:8000/v1" in str(caught.value)


def test_credentials_in_the_url_are_not_shown():
    llm = OpenAICompatLLM("http://user:hunter2@127.0.0.1:1/v1/", "llmrec")
    assert llm.url == "http://127.0.0.1:1/v1" and "hunter2" not in llm.url


def test_pipeline_builds_the_http_backend_without_a_local_model(monkeypatch):
    import llmrec.llm

    def no_local(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a local model was prepared")

    monkeypatch.setattr(llmrec.llm, "prepare_model", no_local)
    config = RecommenderConfig().updated(llm={"url": "http://127.0.0.1:8000/v1", "model": "llmrec"})
    llm = Recommender(config).llm
    assert isinstance(llm, OpenAICompatLLM)
    assert (llm.base_url, llm.model) == ("http://127.0.0.1:8000/v1", "llmrec")
    assert RecommenderConfig().updated(llm={"url": None}).llm.url is None  # None keeps the default


def test_pipeline_refuses_a_local_adapter_with_a_server(tmp_path):
    config = RecommenderConfig().updated(llm={"url": "http://127.0.0.1:8000/v1", "adapter": tmp_path})
    with pytest.raises(ConfigError, match="--model"):
        _ = Recommender(config).llm


@pytest.mark.parametrize("command", ["recommend", "why"])
def test_cli_offers_llm_url(command):
    from typer.testing import CliRunner

    from llmrec.cli import app

    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    assert "--llm-url" in result.output


@pytest.mark.network
def test_json_replies_ask_for_the_schema_and_each_task_can_name_its_own_model(server):
    schema = {"type": "object", "properties": {"intent": {"type": "string"}}, "required": ["intent"]}
    server.text = '{"intent": "why"}'
    llm = OpenAICompatLLM(server.url, "base", task_models={"understand": "llmrec-understand", "rank": "llmrec"})
    assert llm.generate_json(MESSAGES, schema, max_new_tokens=40) == '{"intent": "why"}'
    llm.generate(MESSAGES)  # explain has no name of its own: the base model
    server.top_logprobs = top(A=-1.0)
    llm.score_options(MESSAGES, ["A"])
    first, second, third = (r["body"] for r in server.requests)
    assert first["response_format"] == {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}
    assert (first["model"], first["max_tokens"], first["temperature"]) == ("llmrec-understand", 40, 0)
    assert (second["model"], third["model"]) == ("base", "llmrec")
    assert "response_format" not in second
    with pytest.raises(ConfigError, match="unknown LLM task 'chat'"):
        OpenAICompatLLM(server.url, "base", task_models={"chat": "x"})


@pytest.mark.network
@pytest.mark.parametrize("mode", ["ok", "fastapi-422"])  # llama-cpp-python's 500, a FastAPI 422
def test_a_server_that_rejects_json_schema_is_asked_with_llama_cpp_pythons_json_object_form_once(server, mode):
    """llama-cpp-python's server takes {"type": "json_object", "schema": ...}; json_schema is a validation error."""
    schema = {"type": "object", "properties": {"intent": {"type": "string"}}, "required": ["intent"]}
    server.mode, server.rejected_formats, server.text = mode, ("json_schema",), '{"intent": "why"}'
    llm = OpenAICompatLLM(server.url, "llmrec")
    assert llm.generate_json(MESSAGES, schema, 40) == '{"intent": "why"}'
    assert llm.generate_json(MESSAGES, schema, 40) == '{"intent": "why"}'  # the form it took is kept
    formats = [r["body"]["response_format"] for r in server.requests]
    json_object = {"type": "json_object", "schema": schema}
    assert formats == [{"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}, json_object,
                       json_object]  # fmt: skip


@pytest.mark.network
def test_a_500_that_does_not_name_the_format_is_not_retried(server):
    server.mode = "500"
    with pytest.raises(ModelError, match="HTTP 500"):
        OpenAICompatLLM(server.url, "llmrec").generate_json(MESSAGES, {"type": "object"}, 10)
    assert len(server.requests) == 1


@pytest.mark.network
def test_a_server_with_neither_json_form_is_one_model_error_with_its_validation_message(server):
    server.mode, server.rejected_formats = "fastapi-422", ("json_schema", "json_object")
    llm = OpenAICompatLLM(server.url, "llmrec")
    with pytest.raises(ModelError) as caught:
        llm.generate_json(MESSAGES, {"type": "object"}, 10)
    message = str(caught.value)
    assert "HTTP 422 (body.response_format.type: Input should be 'text' or 'json_object')" in message
    assert [r["body"]["response_format"]["type"] for r in server.requests] == ["json_schema", "json_object"]
    assert "\n" not in message
