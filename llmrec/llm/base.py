"""The language-model interface every backend implements, and a deterministic fake for tests.

Three calls matter: ``score_options`` (one forward pass; the logit of each option's first token at the
answer position — the LlamaRec verbalizer), ``generate``/``stream`` (free text for explanations) and
``generate_json`` (greedy text constrained to a JSON schema, for reading a user's message). Each call
names its ``task`` ("rank", "explain" or "understand"); a backend runs a task under that task's LoRA
adapter when it has one and on the base weights otherwise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from llmrec.errors import ConfigError

Messages = Sequence[Mapping[str, str]]
TASKS = ("rank", "explain", "understand")


def check_task(task: str) -> str:
    """``task`` when it is one of ``TASKS``; a ``ConfigError`` naming it otherwise."""
    if task not in TASKS:
        raise ConfigError(f"unknown LLM task {task!r}; use one of {', '.join(TASKS)}")
    return task


@runtime_checkable
class LLM(Protocol):
    name: str
    context_length: int

    def score_options(self, messages: Messages, options: Sequence[str], *, task: str = "rank") -> np.ndarray:
        """Logit of each option's (single) token as the first token of the assistant's reply."""
        ...

    def generate(self, messages: Messages, max_new_tokens: int = 64, *, task: str = "explain") -> str: ...

    def stream(self, messages: Messages, max_new_tokens: int = 64, *, task: str = "explain") -> Iterator[str]: ...

    def generate_json(
        self, messages: Messages, schema: Mapping[str, Any], max_new_tokens: int = 256, *, task: str = "understand"
    ) -> str:
        """Greedy reply constrained to JSON valid against ``schema`` (a JSON schema, e.g. a pydantic model's
        ``model_json_schema()``). Still untrusted: it can be cut short by ``max_new_tokens``; parse it."""
        ...

    def count_tokens(self, messages: Messages) -> int: ...


def _stable_hash(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FakeLLM:
    """Scripted, deterministic stand-in: scores by a hash (or a function), replies from a list.

    ``prompts`` records every call so tests can assert what the model was shown; ``tasks`` the task of
    each call and ``schemas`` the schema of each ``generate_json`` call. ``generate_json`` replies from
    ``json_replies`` (then ``replies``) exactly as scripted: it validates nothing, so tests can feed
    broken JSON to the code that parses it.
    """

    def __init__(
        self,
        replies: Sequence[str] = (),
        scorer: Callable[[Messages, Sequence[str]], Sequence[float]] | None = None,
        context_length: int = 8192,
        fail: bool = False,
        json_replies: Sequence[str] = (),
    ) -> None:
        self.name = "fake"
        self.context_length = context_length
        self._replies = list(replies)
        self._json_replies = list(json_replies)
        self._scorer = scorer
        self._fail = fail
        self.prompts: list[list[dict[str, str]]] = []
        self.tasks: list[str] = []
        self.schemas: list[dict[str, Any]] = []

    def _record(self, messages: Messages, task: str) -> str:
        self.prompts.append([dict(m) for m in messages])
        self.tasks.append(check_task(task))
        if self._fail:
            raise RuntimeError("fake model failure")
        return "\n".join(m["content"] for m in messages)

    def score_options(self, messages: Messages, options: Sequence[str], *, task: str = "rank") -> np.ndarray:
        text = self._record(messages, task)
        if self._scorer is not None:
            return np.asarray(self._scorer(messages, options), dtype=np.float32)
        return np.asarray([_stable_hash(text, o) for o in options], dtype=np.float32)

    def generate(self, messages: Messages, max_new_tokens: int = 64, *, task: str = "explain") -> str:
        self._record(messages, task)
        return self._replies.pop(0) if self._replies else ""

    def stream(self, messages: Messages, max_new_tokens: int = 64, *, task: str = "explain") -> Iterator[str]:
        text = self.generate(messages, max_new_tokens, task=task)
        for word in text.split(" "):
            yield word + " "

    def generate_json(
        self, messages: Messages, schema: Mapping[str, Any], max_new_tokens: int = 256, *, task: str = "understand"
    ) -> str:
        self._record(messages, task)
        self.schemas.append(dict(schema))
        if self._json_replies:
            return self._json_replies.pop(0)
        return self._replies.pop(0) if self._replies else ""

    def count_tokens(self, messages: Messages) -> int:
        return sum(len(m["content"].split()) + 4 for m in messages)
