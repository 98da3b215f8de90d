"""``OpenAICompatLLM``: the ``LLM`` interface over an OpenAI-compatible server (llama.cpp, vLLM, TGI, ...).

Everything goes through ``POST {base_url}/chat/completions``. Scoring asks for one token with
``logprobs``/``top_logprobs`` and reads each option's logprob among the 20 most likely first tokens
(the LlamaRec verbalizer, as ``TransformersLLM`` does with raw logits); generation is greedy; streaming
parses the server-sent events. Every failure (refused, timed out, HTTP error, malformed reply) becomes
one ``ModelError`` line naming the server and what to check. The API key is never logged or echoed.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from llmrec.errors import ConfigError, ModelError
from llmrec.llm.base import Messages, check_task

log = logging.getLogger(__name__)

API_KEY_ENV = "LLMREC_LLM_API_KEY"
TOP_LOGPROBS = 20  # the most OpenAI and vLLM return


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(str(text).split())[:limit]


def _server_message(body: Any) -> str:
    """The human part of an error body: OpenAI's {"error": {"message"}}, vLLM's {"message"}, TGI's {"error"},
    FastAPI's validation errors {"detail": [{"loc", "msg"}]}."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            detail = error.get("message") or error.get("detail") or json.dumps(error)
            if isinstance(detail, list) and all(isinstance(d, dict) and "msg" in d for d in detail):
                detail = "; ".join(f"{'.'.join(map(str, d.get('loc') or ()))}: {d['msg']}".lstrip(": ")
                                   for d in detail)  # fmt: skip
            return _one_line(detail)
        return _one_line(error)
    return _one_line(body)


def _rejects_json_schema(response: Any) -> bool:
    return response.status_code in (400, 422) or "response_format" in response.text


def _response_format(kind: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI's structured output (vLLM, llama.cpp's own llama-server), or llama-cpp-python's server's form:
    ``json_object`` with the schema beside it (its validation error for ``json_schema`` comes as HTTP 500)."""
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "reply", "schema": dict(schema)}}
    return {"type": "json_object", "schema": dict(schema)}


class OpenAICompatLLM:
    """A model served over HTTP by an OpenAI-compatible server; ``model`` is the served model name.

    With vLLM a LoRA adapter is served under its own name (``vllm serve BASE --enable-lora
    --lora-modules llmrec=ADAPTER_DIR``), so choosing an adapter is choosing that name as ``model``.
    The API key comes from ``api_key`` or the ``LLMREC_LLM_API_KEY`` environment variable and is sent
    as ``Authorization: Bearer``. Requests are not retried; each waits at most ``timeout`` seconds.
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 60.0,
                 context_length: int = 8192, task_models: Mapping[str, str] | None = None) -> None:  # fmt: skip
        import httpx

        parts = urlsplit(str(base_url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"LLM server URL {base_url!r} is not an http(s) URL; "
                              "pass one like --llm-url http://127.0.0.1:8000/v1")  # fmt: skip
        self.base_url = str(base_url).rstrip("/")
        # Shown in messages: no user:password, no query string.
        self.url = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}".rstrip("/")
        self.model = self.name = model
        # A task ("rank", "explain", "understand") may be served under its own name (one LoRA per task).
        self.task_models = {check_task(task): str(name) for task, name in (task_models or {}).items()}
        self.context_length = context_length
        self.timeout = timeout
        self._key = api_key or os.environ.get(API_KEY_ENV) or None
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)
        self._json_kind: str | None = None  # the response_format the server took last ("json_schema" first)

    def close(self) -> None:
        self._client.close()

    # Errors ---------------------------------------------------------------------------------
    def _error(self, detail: str) -> ModelError:
        message = f"LLM server {self.url} {detail}"
        return ModelError(message.replace(self._key, "***") if self._key else message)

    def _transport_error(self, exc: Exception) -> ModelError:
        import httpx

        if isinstance(exc, httpx.TimeoutException):
            return self._error(f"did not answer within {self.timeout:g}s; check that it is up and not overloaded")
        if isinstance(exc, httpx.ConnectError):
            reason = "connection refused" if "refused" in str(exc).lower() else _one_line(exc) or "connect failed"
            return self._error(f"is unreachable ({reason}); start it or fix --llm-url")
        return self._error(f"dropped the connection ({_one_line(exc) or type(exc).__name__}); check the server's log")

    def _check_status(self, response: Any) -> None:
        if response.is_success:
            return
        try:
            detail = _server_message(response.json())
        except ValueError:
            detail = _one_line(response.text)
        hint = {401: f"check {API_KEY_ENV}", 403: f"check {API_KEY_ENV}",
                404: "check that the URL ends in /v1 and --model names a served model or adapter"}  # fmt: skip
        raise self._error(f"answered HTTP {response.status_code} ({detail or 'no detail'}); "
                          f"{hint.get(response.status_code, 'check the server log')}")  # fmt: skip

    # Requests -------------------------------------------------------------------------------
    def _payload(self, messages: Messages, task: str, **options: Any) -> dict[str, Any]:
        model = self.task_models.get(check_task(task), self.model)
        return {"model": model, "messages": [dict(m) for m in messages], "temperature": 0, **options}

    def _post(self, payload: dict[str, Any], rejected: Callable[[Any], bool] | None = None) -> Any:
        """The reply's JSON; ``None`` when the server answers an error that ``rejected(response)`` holds true of."""
        import httpx

        try:
            response = self._client.post(f"{self.base_url}/chat/completions", json=payload)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if not response.is_success and rejected is not None and rejected(response):
            log.debug("LLM server %s answered HTTP %d: %s", self.url, response.status_code, _one_line(response.text))
            return None
        self._check_status(response)
        try:
            return response.json()
        except ValueError:
            raise self._error("sent malformed JSON; check that --llm-url points at an OpenAI-compatible /v1") from None

    # LLM interface --------------------------------------------------------------------------
    def score_options(self, messages: Messages, options: Sequence[str], *, task: str = "rank") -> np.ndarray:
        """Logprob of each option as the reply's first token; options outside the top 20 get a floor below all."""
        reply = self._post(self._payload(messages, task, max_tokens=1, logprobs=True, top_logprobs=TOP_LOGPROBS))
        try:
            top = reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            observed: dict[str, float] = {}
            for entry in top:
                logprob = float(entry["logprob"])
                if math.isfinite(logprob):
                    observed[entry["token"]] = max(logprob, observed.get(entry["token"], -math.inf))
        except (KeyError, IndexError, TypeError, ValueError):
            observed = {}
        if not observed:
            raise self._error("sent no choices[0].logprobs.content[0].top_logprobs; it must support logprobs")
        floor = min(observed.values()) - 1.0
        scores = [max((observed[t] for t in (o, f" {o}") if t in observed), default=floor) for o in options]
        missing = [o for o, s in zip(options, scores) if s == floor]
        if missing:
            log.debug("options %s not among the top %d tokens; scored %.3f", missing, TOP_LOGPROBS, floor)
        return np.asarray(scores, dtype=np.float32)

    def generate(self, messages: Messages, max_new_tokens: int = 64, *, task: str = "explain") -> str:
        return self._content(self._post(self._payload(messages, task, max_tokens=max_new_tokens)))

    def generate_json(self, messages: Messages, schema: Mapping[str, Any], max_new_tokens: int = 256, *,
                      task: str = "understand") -> str:  # fmt: skip
        """The server's structured-output mode: ``response_format`` of type ``json_schema`` (OpenAI, vLLM,
        llama.cpp's llama-server). A server that rejects it (HTTP 400 or 422, or an error that names
        ``response_format``: llama-cpp-python's server answers 500) is asked once more with llama-cpp-python's
        ``{"type": "json_object", "schema": ...}``, and the form it took is kept for later calls. A server
        with neither answers an HTTP error, which becomes one ``ModelError`` line."""

        def ask(kind: str, rejected: Callable[[Any], bool] | None = None) -> Any:
            return self._post(self._payload(messages, task, max_tokens=max_new_tokens,
                                            response_format=_response_format(kind, schema)), rejected)  # fmt: skip

        kind = self._json_kind or "json_schema"
        reply = ask(kind, rejected=_rejects_json_schema if self._json_kind is None else None)
        if reply is None:
            log.info("LLM server %s rejects response_format json_schema; asking with json_object", self.url)
            kind, reply = "json_object", ask("json_object")
        self._json_kind = kind
        return self._content(reply)

    def _content(self, reply: Any) -> str:
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise self._error("sent a reply without choices[0].message; check the server's log") from None
        return str(content) if content is not None else ""

    def stream(self, messages: Messages, max_new_tokens: int = 64, *, task: str = "explain") -> Iterator[str]:
        import httpx

        payload = self._payload(messages, task, max_tokens=max_new_tokens, stream=True)
        finished = False
        try:
            with self._client.stream("POST", f"{self.base_url}/chat/completions", json=payload) as response:
                if not response.is_success:
                    response.read()
                    self._check_status(response)
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, comments, "event:" lines
                    data = line[len("data:") :].strip()
                    if data == "[DONE]":
                        return
                    try:
                        chunk = json.loads(data)
                    except ValueError:
                        raise self._error("sent a malformed stream event; check the server's log") from None
                    if not isinstance(chunk, dict) or "error" in chunk or chunk.get("object") == "error":
                        raise self._error(f"failed mid-stream ({_server_message(chunk)}); check the server's log")
                    try:
                        choices = [(c.get("delta") or {}, c.get("finish_reason")) for c in chunk.get("choices") or ()]
                    except AttributeError:
                        raise self._error("sent a stream event without choices[].delta; check the server") from None
                    for delta, finish_reason in choices:  # a usage-only chunk has none
                        if delta.get("content"):
                            yield str(delta["content"])
                        finished = finished or bool(finish_reason)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if not finished:
            raise self._error("closed the stream before it finished; check the server's log")

    def count_tokens(self, messages: Messages) -> int:
        """A conservative estimate: one token per 3 characters plus 4 per message.

        The OpenAI API has no tokenize endpoint (vLLM's ``/tokenize`` is optional), and real BPE
        tokenizers average 3.5-4 characters per token on English, so this over-counts: prompts
        trimmed to fit by this count fit the server's context.
        """
        return sum(math.ceil(len(m["content"]) / 3) + 4 for m in messages)
