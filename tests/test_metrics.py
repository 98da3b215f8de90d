"""Metrics on hand-computed cases, the tie policy, and a cross-check against ranx."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmrec.evaluation.metrics import (
    coverage,
    gini,
    hit_matrix,
    intra_list_diversity,
    novelty,
    per_user_metrics,
    ranking_metrics,
    target_ranks,
    top_k,
)

LOG2_3 = math.log2(3)


def _metrics(ranked: list[list[int]], targets: list[list[int]], ks=(1, 5, 10)) -> dict[str, float]:
    ranked_arr = np.array(ranked, dtype=np.int64).reshape(len(ranked), -1)
    target_arrs = [np.array(t, dtype=np.int64) for t in targets]
    hits = hit_matrix(ranked_arr, target_arrs)
    return ranking_metrics(hits, np.array([len(t) for t in targets]), ks)


def test_hit_at_rank_one():
    m = _metrics([[7, 3, 5]], [[7]], ks=(1, 3))
    assert m["recall@1"] == m["ndcg@1"] == m["mrr@1"] == m["precision@1"] == 1.0
    assert m["recall@3"] == m["ndcg@3"] == m["mrr@3"] == 1.0
    assert m["precision@3"] == pytest.approx(1 / 3)


def test_hit_at_rank_two():
    m = _metrics([[3, 7, 5]], [[7]], ks=(1, 3))
    assert m["recall@1"] == m["ndcg@1"] == m["mrr@1"] == 0.0
    assert m["recall@3"] == 1.0
    assert m["ndcg@3"] == pytest.approx(1 / LOG2_3)
    assert m["mrr@3"] == pytest.approx(0.5)


def test_no_hit():
    m = _metrics([[1, 2, 3]], [[9]], ks=(3,))
    assert all(v == 0.0 for v in m.values())


def test_hit_beyond_cutoff_does_not_count():
    m = _metrics([[1, 2, 3, 4, 5, 9]], [[9]], ks=(5, 10))
    assert m["recall@5"] == m["ndcg@5"] == m["mrr@5"] == 0.0
    # beyond the list width (10 > 6) the list is treated as padded with misses
    assert m["recall@10"] == 1.0
    assert m["ndcg@10"] == pytest.approx(1 / math.log2(7))
    assert m["mrr@10"] == pytest.approx(1 / 6)


def test_empty_list_scores_zero():
    m = _metrics([[-1, -1, -1]], [[0]], ks=(1, 3))
    assert all(v == 0.0 for v in m.values())
    empty = ranking_metrics(hit_matrix(np.zeros((1, 0), dtype=np.int64), [np.array([0])]), np.array([1]), (5,))
    assert all(v == 0.0 for v in empty.values())


def test_several_relevant_items():
    # relevant {1, 2}; list [1, 5, 2]: DCG = 1 + 1/log2(4); IDCG@3 = 1 + 1/log2(3)
    m = _metrics([[1, 5, 2]], [[1, 2]], ks=(3,))
    assert m["recall@3"] == 1.0
    assert m["precision@3"] == pytest.approx(2 / 3)
    assert m["ndcg@3"] == pytest.approx((1 + 0.5) / (1 + 1 / LOG2_3))
    assert m["mrr@3"] == 1.0
    # IDCG is capped at K: at K=1 one hit is ideal
    assert _metrics([[1, 5, 2]], [[1, 2]], ks=(1,))["ndcg@1"] == 1.0


def test_mean_over_users_and_empty_relevance_skipped():
    m = _metrics([[1, 2], [3, 4], [5, 6]], [[1], [4], []], ks=(2,))
    assert m["recall@2"] == 1.0  # the third user has no relevant item and is left out
    assert m["mrr@2"] == pytest.approx((1 + 0.5) / 2)
    per_user = per_user_metrics(hit_matrix(np.array([[1, 2]]), [np.array([], dtype=np.int64)]), np.array([0]), 2)
    assert np.isnan(per_user["ndcg"]).all()


def test_standard_error():
    m = ranking_metrics(np.array([[True], [False]]), np.array([1, 1]), (1,), with_se=True)
    assert m["recall@1"] == 0.5
    assert m["recall@1_se"] == pytest.approx(np.std([1, 0], ddof=1) / math.sqrt(2))


def test_ties_go_to_the_lower_item_id():
    scores = np.array([[0.5, 0.9, 0.5, 0.5, 0.1]], dtype=np.float32)
    assert top_k(scores, 5).tolist() == [[1, 0, 2, 3, 4]]
    # rank = strictly greater + equal with a lower id
    assert target_ranks(scores, np.array([0])).tolist() == [1]
    assert target_ranks(scores, np.array([3])).tolist() == [3]
    assert target_ranks(scores, np.array([1])).tolist() == [0]


def test_top_k_never_lists_masked_items_and_pads():
    scores = np.array([[1.0, -np.inf, 3.0]], dtype=np.float32)
    assert top_k(scores, 5).tolist() == [[2, 0, -1, -1, -1]]


def test_ranks_agree_with_top_k():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(20, 30)).astype(np.float32)  # many ties
    targets = rng.integers(0, 30, size=20)
    ranked = top_k(scores, 30)
    positions = np.array([np.flatnonzero(ranked[u] == t)[0] for u, t in enumerate(targets)])
    assert (positions == target_ranks(scores, targets)).all()


def test_coverage_gini_novelty_by_hand():
    ranked = np.array([[0, 1], [0, 2]])
    assert coverage(ranked, 4) == pytest.approx(3 / 4)
    # exposure [2, 1, 1, 0] sorted [0, 1, 1, 2]: sum((2i - n - 1) x_i) / (n sum x) = (-1 + 1 + 6) / (4 * 4)
    assert gini(ranked, 4) == pytest.approx(6 / 16)
    assert gini(np.array([[0], [1], [2], [3]]), 4) == pytest.approx(0.0)
    counts = np.array([4, 2, 1, 0])
    # p = [1, 1/2, 1/4]; items 0, 1, 0, 2 -> (0 + 1 + 0 + 2) / 4
    assert novelty(ranked, counts, n_users=4) == pytest.approx(3 / 4)
    assert coverage(np.full((2, 3), -1), 4) == 0.0 and gini(np.full((2, 3), -1), 4) == 0.0


def test_intra_list_diversity_by_hand():
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    assert intra_list_diversity(np.array([[0, 1]]), embeddings) == pytest.approx(1.0)
    assert intra_list_diversity(np.array([[0, 0]]), embeddings) == pytest.approx(0.0)
    # pairs (0,1): 1, (0,2): 1 - 1/sqrt2, (1,2): 1 - 1/sqrt2
    expected = (1 + 2 * (1 - 1 / math.sqrt(2))) / 3
    assert intra_list_diversity(np.array([[0, 1, 2, -1]]), embeddings) == pytest.approx(expected)
    assert intra_list_diversity(np.array([[3, 0]]), embeddings) == pytest.approx(1.0)  # zero vector: orthogonal
    assert intra_list_diversity(np.array([[0, -1]]), embeddings) == 0.0  # no pair to compare


def reference_metrics(ranked: list[int], relevant: set[int], k: int) -> dict[str, float]:
    """Textbook definitions, one user at a time, in plain Python (the oracle for both checks below)."""
    top = ranked[:k]
    gains = [1.0 if item in relevant else 0.0 for item in top]
    dcg = sum(g / math.log2(p + 2) for p, g in enumerate(gains))
    idcg = sum(1 / math.log2(p + 2) for p in range(min(len(relevant), k)))
    first = next((p for p, g in enumerate(gains) if g), None)
    return {
        "ndcg": dcg / idcg,
        "recall": sum(gains) / len(relevant),
        "mrr": 0.0 if first is None else 1 / (first + 1),
        "precision": sum(gains) / k,
    }


def _random_run(seed: int, n_users: int = 40, n_items: int = 60, width: int = 20):
    rng = np.random.default_rng(seed)
    ranked = np.stack([rng.permutation(n_items)[:width] for _ in range(n_users)])
    targets = [rng.choice(n_items, size=rng.integers(1, 4), replace=False) for _ in range(n_users)]
    return ranked, targets


KS_CHECKED = (1, 5, 10, 20)


def _reference_means(ranked: np.ndarray, targets: list[np.ndarray]) -> dict[str, float]:
    out = {}
    for k in KS_CHECKED:
        per_user = [reference_metrics(row.tolist(), set(t.tolist()), k) for row, t in zip(ranked, targets)]
        for name in ("ndcg", "recall", "mrr", "precision"):
            out[f"{name}@{k}"] = float(np.mean([m[name] for m in per_user]))
    return out


def test_vectorised_metrics_match_the_reference():
    ranked, targets = _random_run(7)
    ours = ranking_metrics(hit_matrix(ranked, targets), np.array([len(t) for t in targets]), KS_CHECKED)
    for name, value in _reference_means(ranked, targets).items():
        assert ours[name] == pytest.approx(value, abs=1e-12), name


@pytest.mark.slow
def test_ranx_agrees_with_the_reference():
    """ranx (numba; a first call JIT-compiles for tens of seconds, hence ``slow``) gives the reference's numbers."""
    ranx = pytest.importorskip("ranx")
    ranked, targets = _random_run(7)
    width = ranked.shape[1]
    qrels = ranx.Qrels({f"u{u}": {f"i{i}": 1 for i in t} for u, t in enumerate(targets)})
    run = ranx.Run({f"u{u}": {f"i{i}": float(width - p) for p, i in enumerate(row)} for u, row in enumerate(ranked)})
    names = [f"{m}@{k}" for m in ("ndcg", "recall", "mrr", "precision") for k in KS_CHECKED]
    expected = ranx.evaluate(qrels, run, names)
    reference = _reference_means(ranked, targets)
    for name in names:
        assert reference[name] == pytest.approx(expected[name], abs=1e-9), name
