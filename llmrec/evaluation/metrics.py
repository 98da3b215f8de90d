"""Ranking and beyond-accuracy metrics, vectorised with numpy.

Everything starts from ranked lists: an (n_users, K) array of dense item ids, best first, padded
with -1 where a list is shorter. ``hit_matrix`` marks which positions hold a relevant item and
``ranking_metrics`` turns hits into Recall/NDCG/MRR/Precision at each cut-off, averaged over users.
Definitions follow ranx (binary relevance): Recall@K = hits/|relevant| (= hit rate with one
held-out item), Precision@K = hits/K, MRR@K = 1/rank of the first hit within K, NDCG@K with
gain 1/log2(rank+1) over the ideal DCG of min(|relevant|, K) hits.

We compute them ourselves rather than with ranx: ranx builds dict-of-dict runs and pays a numba
JIT warm-up of several seconds per process, while these are a few array operations on the top-50
lists the harness keeps anyway. The test suite cross-checks both on random runs.

Tie policy (``top_k``): items are ordered by descending score, equal scores by ascending dense item
id (a stable sort). So the rank of item t is #{score > s_t} + #{score == s_t and id < t}:
deterministic, and consistent between the rank of a target and the lists shown to users.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

KS: tuple[int, ...] = (1, 5, 10, 20, 50)
RANKING_METRICS: tuple[str, ...] = ("ndcg", "recall", "mrr", "precision")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(n, k) dense ids by descending score, ties to the lower id; -inf items are never listed (-1)."""
    scores = np.asarray(scores)
    n, n_items = scores.shape
    width = min(k, n_items)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :width]
    ranked = np.full((n, k), -1, dtype=np.int64)
    ranked[:, :width] = order
    excluded = np.take_along_axis(scores, order, axis=1) == -np.inf
    ranked[:, :width][excluded] = -1
    return ranked


def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of one target per row under the tie policy of ``top_k``."""
    scores = np.asarray(scores)
    rows = np.arange(len(scores))
    target_scores = scores[rows, targets][:, None]
    ids = np.arange(scores.shape[1])[None, :]
    better = (scores > target_scores) | ((scores == target_scores) & (ids < np.asarray(targets)[:, None]))
    return better.sum(axis=1)


def hit_matrix(ranked: np.ndarray, targets: Sequence[np.ndarray]) -> np.ndarray:
    """Boolean (n, K): is ``ranked[u, p]`` one of user u's relevant items (padding -1 never is)."""
    ranked = np.asarray(ranked, dtype=np.int64)
    if len(ranked) != len(targets):
        raise ValueError(f"{len(ranked)} ranked lists but {len(targets)} target sets")
    lengths = np.array([np.size(t) for t in targets])
    if len(ranked) and (lengths == 1).all():
        flat = np.array([np.asarray(t).reshape(-1)[0] for t in targets], dtype=np.int64)
        return (ranked == flat[:, None]) & (ranked >= 0)
    hits = np.zeros(ranked.shape, dtype=bool)
    for row, relevant in enumerate(targets):
        hits[row] = np.isin(ranked[row], np.asarray(relevant, dtype=np.int64)) & (ranked[row] >= 0)
    return hits


def per_user_metrics(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Recall/NDCG/MRR/Precision@k per user (users with no relevant item get NaN)."""
    hits = np.asarray(hits, dtype=bool)
    n_relevant = np.asarray(n_relevant, dtype=np.float64)
    top = np.zeros((len(hits), k), dtype=bool)
    width = min(k, hits.shape[1])
    top[:, :width] = hits[:, :width]
    n_hits = top.sum(axis=1)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(n_relevant, k).astype(np.int64)]
    first = np.where(top.any(axis=1), top.argmax(axis=1), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "ndcg": (top * discounts).sum(axis=1) / ideal,
            "recall": n_hits / n_relevant,
            "mrr": np.where(first >= 0, 1.0 / (first + 1), 0.0),
            "precision": n_hits / k,
        }
    empty = n_relevant == 0
    for values in out.values():
        values[empty] = np.nan
    return out


def ranking_metrics(
    hits: np.ndarray, n_relevant: np.ndarray, ks: Sequence[int] = KS, with_se: bool = False
) -> dict[str, float]:
    """``{"ndcg@10": mean, ...}`` over users that have at least one relevant item.

    With ``with_se`` also ``"ndcg@10_se"`` etc.: the standard error of the mean over users.
    """
    result: dict[str, float] = {}
    for k in ks:
        for name, values in per_user_metrics(hits, n_relevant, k).items():
            valid = values[~np.isnan(values)]
            result[f"{name}@{k}"] = float(valid.mean()) if len(valid) else 0.0
            if with_se:
                se = valid.std(ddof=1) / np.sqrt(len(valid)) if len(valid) > 1 else 0.0
                result[f"{name}@{k}_se"] = float(se)
    return result


# Beyond accuracy -------------------------------------------------------------------------------
def _valid_ids(ranked: np.ndarray) -> np.ndarray:
    ranked = np.asarray(ranked, dtype=np.int64)
    return ranked[ranked >= 0]


def coverage(ranked: np.ndarray, n_items: int) -> float:
    """Catalogue coverage: share of all items that appear in at least one list."""
    return float(len(np.unique(_valid_ids(ranked))) / n_items) if n_items else 0.0


def intra_list_diversity(ranked: np.ndarray, embeddings: np.ndarray) -> float:
    """Mean over lists of the mean pairwise cosine distance (1 - cos) between the listed items.

    Items with a zero embedding count as orthogonal to everything. Lists with fewer than two
    items are skipped; 0.0 when none is left.
    """
    ranked = np.asarray(ranked, dtype=np.int64)
    emb = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    unit = np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0)
    distances = []
    for start in range(0, len(ranked), 256):  # bounded memory: (256, K, dim) at a time
        block = ranked[start : start + 256]
        valid = block >= 0
        vectors = unit[np.where(valid, block, 0)] * valid[..., None]
        summed = vectors.sum(axis=1)
        counts = valid.sum(axis=1)
        pairs = counts * (counts - 1)
        # sum over ordered pairs k != l of cos = |sum of unit vectors|^2 - sum of squared norms
        off_diagonal = (summed**2).sum(axis=1) - (vectors**2).sum(axis=(1, 2))
        keep = pairs > 0
        distances.append(1.0 - off_diagonal[keep] / pairs[keep])
    flat = np.concatenate(distances) if distances else np.zeros(0)
    return float(flat.mean()) if len(flat) else 0.0


def novelty(ranked: np.ndarray, item_counts: np.ndarray, n_users: int) -> float:
    """Mean self-information -log2 p(i) of listed items, p(i) = users with i / all users.

    Items no training user has seen count as seen once, so the value stays finite.
    """
    ids = _valid_ids(ranked)
    if not len(ids) or n_users <= 0:
        return 0.0
    popularity = np.maximum(np.asarray(item_counts, dtype=np.float64)[ids], 1.0) / n_users
    return float(np.mean(-np.log2(popularity)))


def gini(ranked: np.ndarray, n_items: int) -> float:
    """Gini coefficient of exposure (list appearances) over the whole catalogue: 0 even, 1 concentrated."""
    ids = _valid_ids(ranked)
    if not len(ids) or n_items <= 0:
        return 0.0
    exposure = np.sort(np.bincount(ids, minlength=n_items).astype(np.float64))
    index = np.arange(1, n_items + 1)
    return float(((2 * index - n_items - 1) * exposure).sum() / (n_items * exposure.sum()))


def beyond_accuracy(
    ranked: np.ndarray, k: int, n_items: int, item_counts: np.ndarray, n_users: int, embeddings: np.ndarray | None
) -> dict[str, float]:
    """coverage/diversity/novelty/gini at cut-off ``k`` (diversity only when embeddings are given)."""
    top = np.asarray(ranked)[:, :k]
    out = {
        f"coverage@{k}": coverage(top, n_items),
        f"novelty@{k}": novelty(top, item_counts, n_users),
        f"gini@{k}": gini(top, n_items),
    }
    if embeddings is not None:
        out[f"diversity@{k}"] = intra_list_diversity(top, embeddings)
    return out
