"""Work not repeated on the transformers runtime: KV caches of recent prompts, reused for the longest shared
token prefix (the transformers twin of ``session.PrefixStore``).

A ranking prompt starts with what is stable within a conversation (system turn, history, stated
preferences) and ends with the candidates; explanations of one list share their opening. Each single
prompt's cache is kept (a few per adapter) and the next prompt starts from a private copy of the best
match, cut to the shared prefix, so only its new tokens are computed. Only single prompts use it:
left-padded batches would shift the prefix. Keys include the adapter that was active, so a LoRA never
sees keys computed by another; a match shorter than ``min_tokens`` is not worth the copy.
"""

from __future__ import annotations

import copy
import inspect
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from llmrec.llm.session import common_prefix


class PrefixCache:
    def __init__(self, model: Any, tokenizer: Any, size: int = 8, min_tokens: int = 16) -> None:
        self.model, self.tokenizer, self.size, self.min_tokens = model, tokenizer, size, min_tokens
        self._entries: OrderedDict[tuple[str, bytes], tuple[np.ndarray, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = self.reused_tokens = 0
        # transformers 5.2x calls it ``cache``; earlier releases ``past_key_values``.
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.keyword = "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"

    def kwargs(self, cache: Any) -> dict[str, Any]:
        """``cache`` as the keyword argument this transformers release expects (none for no cache)."""
        return {self.keyword: cache} if cache is not None else {}

    def longest(self, ids: Sequence[int], task: str) -> tuple[int, Any]:
        """(n, a private copy of the cache of the first n tokens of ``ids`` under ``task``'s weights); n is
        below len(ids), so the last token is always computed. (0, None) when nothing worth reusing is kept."""
        ids = np.asarray(ids, dtype=np.int64)
        best, best_key = 0, None
        with self._lock:
            for key, (stored, _) in self._entries.items():
                if key[0] == task:
                    n = min(common_prefix(stored, ids), len(ids) - 1)
                    if n > best:
                        best, best_key = n, key
            if best_key is None or best < self.min_tokens:
                self.misses += 1
                return 0, None
            self._entries.move_to_end(best_key)
            cache = copy.deepcopy(self._entries[best_key][1])
        _cut(cache, best)
        self.hits += 1
        self.reused_tokens += best
        return best, cache

    def put(self, ids: Sequence[int], task: str, cache: Any) -> None:
        """Keep ``cache`` (owned by the store from now on) as the cache of ``ids`` under ``task``."""
        ids = np.asarray(ids, dtype=np.int64)
        if cache is None or cache.get_seq_length() < len(ids):
            return
        _cut(cache, len(ids))  # a generation's cache: keep the prompt's part
        key = (task, ids.tobytes())
        with self._lock:
            self._entries[key] = (ids, cache)
            self._entries.move_to_end(key)
            for other in [k for k, (s, _) in self._entries.items() if k != key and k[0] == task
                          and len(s) <= len(ids) and common_prefix(s, ids) == len(s)]:  # fmt: skip
                del self._entries[other]  # the longer prompt's cache serves both
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


def _cut(cache: Any, length: int) -> None:
    """Keep the first ``length`` tokens of ``cache``; ``crop(-n)`` removes n tokens in every transformers 4.4x-5.x."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)


class NoPrefix:
    """``reuse_prefix=False``: every prompt is computed from its first token."""

    hits = misses = reused_tokens = 0
    keyword = "cache"

    def kwargs(self, cache: Any) -> dict[str, Any]:
        return {}

    def longest(self, ids: Sequence[int], task: str) -> tuple[int, Any]:
        return 0, None

    def put(self, ids: Sequence[int], task: str, cache: Any) -> None:
        pass
