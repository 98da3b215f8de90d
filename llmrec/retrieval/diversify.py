"""Maximal marginal relevance over item embeddings.

Greedily picks the candidate maximising ``lam * relevance - (1 - lam) * max(0, max cosine to the
items already picked)``, relevance being the candidate score min-max scaled to [0, 1]. ``lam = 1``
keeps the input order; lower values trade relevance for variety. The objective of each pick never
exceeds the previous one's (similarities to the picked set only grow), so it serves as the output
score and the list stays sorted; the input score is kept in the evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from llmrec.errors import ConfigError
from llmrec.index.base import VectorIndex
from llmrec.retrieval import Retriever
from llmrec.types import Candidate, UserProfile


def _check_lambda(lam: float) -> float:
    if not 0.0 <= lam <= 1.0:
        raise ConfigError(f"MMR lambda must be in [0, 1] (1 = no diversification), got {lam}")
    return float(lam)


def mmr(candidates: Sequence[Candidate], vectors: Mapping[str, np.ndarray], n: int, lam: float) -> list[Candidate]:
    """Reorder (a prefix of) ``candidates`` by MMR; items without a vector count as dissimilar to all."""
    lam = _check_lambda(lam)
    candidates = list(candidates)
    if n <= 0 or not candidates:
        return []
    if lam >= 1.0:
        return candidates[:n]
    scores = np.array([c.score for c in candidates], dtype=np.float64)
    span = scores.max() - scores.min()
    relevance = (scores - scores.min()) / span if span > 0 else np.ones_like(scores)
    dim = next((len(v) for v in vectors.values()), 1)
    matrix = np.stack([np.asarray(vectors.get(c.item_id, np.zeros(dim)), dtype=np.float64) for c in candidates])
    max_sim = np.zeros(len(candidates))
    remaining = np.ones(len(candidates), dtype=bool)
    out: list[Candidate] = []
    for _ in range(min(n, len(candidates))):
        objective = np.where(remaining, lam * relevance - (1.0 - lam) * max_sim, -np.inf)
        pick = int(np.argmax(objective))  # ties: the earlier (more relevant) candidate
        remaining[pick] = False
        max_sim = np.maximum(max_sim, matrix @ matrix[pick])
        cand = candidates[pick]
        stages = (*cand.evidence.stage_scores, ("mmr", float(objective[pick])))
        out.append(replace(cand, score=float(objective[pick]), evidence=replace(cand.evidence, stage_scores=stages)))
    return out


class MMRDiversifier:
    """``diversify(candidates, n)`` with vectors fetched from a vector index."""

    def __init__(self, index: VectorIndex, lam: float = 0.7) -> None:
        self.index = index
        self.lam = _check_lambda(lam)

    def diversify(self, candidates: Sequence[Candidate], n: int) -> list[Candidate]:
        if self.lam >= 1.0:
            return list(candidates[:n])
        return mmr(candidates, self.index.get_vectors([c.item_id for c in candidates]), n, self.lam)


class DiversifiedRetriever:
    """A retriever whose deeper pool (``pool_factor * k``) is cut to ``k`` by MMR."""

    def __init__(self, inner: Retriever, diversifier: MMRDiversifier, pool_factor: int = 3) -> None:
        self.inner = inner
        self.diversifier = diversifier
        self.pool_factor = pool_factor
        self.name = f"{inner.name}+mmr"

    def retrieve(self, profile: UserProfile, k: int) -> list[Candidate]:
        if k <= 0:
            return []
        return self.diversifier.diversify(self.inner.retrieve(profile, k * self.pool_factor), k)
