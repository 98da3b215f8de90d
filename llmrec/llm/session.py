"""Work not repeated: the key/value cache of recent prompts, reused for the longest shared token prefix.

A ranking prompt puts what is stable within a conversation first (system turn, the user's history and
stated preferences) and the candidates last, and explanations for one list share their opening; so
the next prompt of the same conversation usually starts with many tokens an earlier prompt already
computed. ``PrefixStore`` keeps the caches of the last few prompts per weights (``task`` key: the
adapter that produced them) and hands back the longest match, cut to the shared prefix; only the
rest of the prompt is computed. Matching is on token ids, so it never depends on how the text was
built, and a cache is never shared between different weights.

Caches are lists of numpy arrays shaped [batch, heads, tokens, head_dim] (the OpenVINO runtime's own
layout); cutting one is slicing the token axis. Written here because the runtimes on PyPI that keep a
prompt cache (llama.cpp, vLLM) do not expose it for a forward pass whose logits we read ourselves.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

Cache = list[np.ndarray]


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the shared leading run of two 1-d integer arrays."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


class PrefixStore:
    """The last ``size`` prompt caches per task; ``longest`` returns a reusable prefix of one of them."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._entries: dict[str, OrderedDict[bytes, tuple[np.ndarray, Cache]]] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = self.reused_tokens = 0

    def longest(self, task: str, ids: Sequence[int]) -> tuple[int, Cache | None]:
        """(n, cache of the first n tokens of ``ids``) for the best stored match, n < len(ids) so that at
        least the last token is computed (its logits are the answer); (0, None) when nothing matches."""
        ids = np.asarray(ids, dtype=np.int64)
        best, best_key = 0, None
        with self._lock:
            entries = self._entries.get(task, OrderedDict())
            for key, (stored, _) in entries.items():
                n = min(common_prefix(stored, ids), len(ids) - 1)
                if n > best:
                    best, best_key = n, key
            if best_key is None:
                self.misses += 1
                return 0, None
            entries.move_to_end(best_key)
            cache = entries[best_key][1]
        self.hits += 1
        self.reused_tokens += best
        return best, [layer[:, :, :best, :] for layer in cache]

    def put(self, task: str, ids: Sequence[int], cache: Cache) -> None:
        """Remember ``cache`` (owned by the store from now on) as the cache of ``ids``."""
        ids = np.asarray(ids, dtype=np.int64)
        with self._lock:
            entries = self._entries.setdefault(task, OrderedDict())
            key = ids.tobytes()
            entries[key] = (ids, cache)
            entries.move_to_end(key)
            # A prompt that extends a stored one replaces it: the longer cache serves both.
            for other in [k for k, (s, _) in entries.items() if k != key and len(s) <= len(ids)
                          and common_prefix(s, ids) == len(s)]:  # fmt: skip
                del entries[other]
            while len(entries) > self.size:
                entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
