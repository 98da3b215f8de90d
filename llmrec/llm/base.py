"""The language-model interface every backend implements, and a deterministic fake for tests.

Two calls matter: ``score_options`` (one forward pass; the logit of each option's first token at the
answer position — the LlamaRec verbalizer) and ``generate``/``stream`` (free text for explanations).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

Messages = Sequence[Mapping[str, str]]


@runtime_checkable
class LLM(Protocol):
    name: str
    context_length: int

    def score_options(self, messages: Messages, options: Sequence[str]) -> np.ndarray:
        """Logit of each option's (single) token as the first token of the assistant's reply."""
        ...

    def generate(self, messages: Messages, max_new_tokens: int = 64) -> str: ...

    def stream(self, messages: Messages, max_new_tokens: int = 64) -> Iterator[str]: ...

    def count_tokens(self, messages: Messages) -> int: ...


def _stable_hash(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FakeLLM:
    """Scripted, deterministic stand-in: scores by a hash (or a function), replies from a list.

    ``prompts`` records every call so tests can assert what the model was shown.
    """

    def __init__(
        self,
        replies: Sequence[str] = (),
        scorer: Callable[[Messages, Sequence[str]], Sequence[float]] | None = None,
        context_length: int = 8192,
        fail: bool = False,
    ) -> None:
        self.name = "fake"
        self.context_length = context_length
        self._replies = list(replies)
        self._scorer = scorer
        self._fail = fail
        self.prompts: list[list[dict[str, str]]] = []

    def _record(self, messages: Messages) -> str:
        self.prompts.append([dict(m) for m in messages])
        if self._fail:
            raise RuntimeError("fake model failure")
        return "\n".join(m["content"] for m in messages)

    def score_options(self, messages: Messages, options: Sequence[str]) -> np.ndarray:
        text = self._record(messages)
        if self._scorer is not None:
            return np.asarray(self._scorer(messages, options), dtype=np.float32)
        return np.asarray([_stable_hash(text, o) for o in options], dtype=np.float32)

    def generate(self, messages: Messages, max_new_tokens: int = 64) -> str:
        self._record(messages)
        return self._replies.pop(0) if self._replies else ""

    def stream(self, messages: Messages, max_new_tokens: int = 64) -> Iterator[str]:
        text = self.generate(messages, max_new_tokens)
        for word in text.split(" "):
            yield word + " "

    def count_tokens(self, messages: Messages) -> int:
        return sum(len(m["content"].split()) + 4 for m in messages)
