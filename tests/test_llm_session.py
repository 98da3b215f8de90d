"""The KV prefix store (no model): longest shared token prefix, per weights, bounded, never the whole prompt."""

from __future__ import annotations

import numpy as np

from llmrec.llm.session import PrefixStore, common_prefix


def cache(n: int, fill: float = 1.0) -> list[np.ndarray]:
    """Two layers' keys and values for ``n`` tokens, each token's slot holding its position (to check cuts)."""
    layer = np.broadcast_to(np.arange(n, dtype=np.float32)[None, None, :, None] * fill, (1, 2, n, 4)).copy()
    return [layer, layer.copy(), layer.copy(), layer.copy()]


def test_common_prefix_counts_the_shared_leading_run():
    a = np.array([1, 2, 3, 4])
    assert common_prefix(a, np.array([1, 2, 9])) == 2
    assert common_prefix(a, a) == 4
    assert common_prefix(a, np.array([7])) == 0
    assert common_prefix(a, np.array([], dtype=np.int64)) == 0


def test_longest_returns_the_best_match_cut_to_the_shared_prefix_and_never_the_whole_prompt():
    store = PrefixStore()
    assert store.longest("rank", [1, 2, 3]) == (0, None)
    store.put("rank", [1, 2, 3, 4, 5], cache(5))
    store.put("rank", [1, 2, 8, 9], cache(4))
    n, past = store.longest("rank", [1, 2, 3, 4, 7, 7])
    assert n == 4 and past is not None
    assert [p.shape for p in past] == [(1, 2, 4, 4)] * 4
    assert past[0][0, 0, :, 0].tolist() == [0, 1, 2, 3]
    n, _ = store.longest("rank", [1, 2, 3, 4, 5])  # the same prompt again: the last token is still computed
    assert n == 4
    assert (store.hits, store.misses, store.reused_tokens) == (2, 1, 8)


def test_caches_of_other_weights_are_never_used():
    store = PrefixStore()
    store.put("base", [1, 2, 3, 4], cache(4))
    assert store.longest("adapter-x", [1, 2, 3, 4, 5]) == (0, None)


def test_a_longer_prompt_replaces_the_one_it_extends_and_the_store_is_bounded():
    store = PrefixStore(size=2)
    store.put("rank", [1, 2], cache(2))
    store.put("rank", [1, 2, 3], cache(3))
    assert len(store._entries["rank"]) == 1
    store.put("rank", [5, 6], cache(2))
    store.put("rank", [7, 8], cache(2))
    assert store.longest("rank", [1, 2, 3, 4]) == (0, None)  # evicted: the oldest goes first
    assert store.longest("rank", [7, 8, 9])[0] == 2
    store.clear()
    assert store.longest("rank", [7, 8, 9]) == (0, None)
