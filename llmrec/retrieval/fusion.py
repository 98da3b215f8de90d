"""Hybrid retrieval: fuse several retrievers' ranked lists into one.

``rrf`` (default): reciprocal-rank fusion, ``sum_r w_r / (rrf_k + rank_r)``; robust because it
ignores the retrievers' incomparable score scales. ``weighted``: each list's scores min-max scaled
to [0, 1], then a weighted sum (an item missing from a list gets 0 there). Each retriever is asked
for a deeper pool than ``k`` so that fusion has something to reorder. An item found by several
retrievers keeps every one's evidence: their plain-words lines ("people who liked X also liked it",
"in conversations, ...") are joined with "; ".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from llmrec.errors import ConfigError
from llmrec.retrieval import Retriever, merge_evidence, top_candidates
from llmrec.types import Candidate, Evidence, UserProfile

METHODS = ("rrf", "weighted")


class HybridRetriever:
    """Fuses the candidates of ``retrievers``; sources and evidence of every contributing list are kept."""

    name = "hybrid"

    def __init__(self, retrievers: Sequence[Retriever], method: str = "rrf", weights: Sequence[float] | None = None,
                 rrf_k: float = 60.0, pool_factor: int = 3, min_pool: int = 50) -> None:  # fmt: skip
        if not retrievers:
            raise ConfigError("HybridRetriever needs at least one retriever")
        if method not in METHODS:
            raise ConfigError(f"unknown fusion method {method!r}; choose one of {', '.join(METHODS)}")
        weights = tuple(weights) if weights is not None else (1.0,) * len(retrievers)
        if len(weights) != len(retrievers) or any(w < 0 for w in weights) or not any(weights):
            raise ConfigError(f"fusion weights {weights} must be one non-negative number per retriever, not all 0")
        self.retrievers = tuple(retrievers)
        self.method = method
        self.weights = weights
        self.rrf_k = rrf_k
        self.pool_factor = pool_factor
        self.min_pool = min_pool

    def retrieve(self, profile: UserProfile, k: int) -> list[Candidate]:
        if k <= 0:
            return []
        depth = max(k * self.pool_factor, self.min_pool)
        lists = [r.retrieve(profile, depth) for r in self.retrievers]
        fused: dict[str, float] = {}
        merged: dict[str, Candidate] = {}
        for weight, candidates in zip(self.weights, lists):
            contributions = self._contributions(candidates)
            for cand, value in zip(candidates, contributions):
                fused[cand.item_id] = fused.get(cand.item_id, 0.0) + weight * value
                prev = merged.get(cand.item_id)
                merged[cand.item_id] = cand if prev is None else replace(
                    prev, sources=tuple(dict.fromkeys(prev.sources + cand.sources)),
                    evidence=_merged(prev.evidence, cand.evidence))  # fmt: skip
        out = []
        for item_id, score in top_candidates(fused, k, banned=profile.seen):
            cand = merged[item_id]
            stages = (*cand.evidence.stage_scores, (self.method, score))
            out.append(replace(cand, score=score, evidence=replace(cand.evidence, stage_scores=stages)))
        return out

    def _contributions(self, candidates: Sequence[Candidate]) -> list[float]:
        if self.method == "rrf":
            return [1.0 / (self.rrf_k + rank) for rank in range(1, len(candidates) + 1)]
        if not candidates:
            return []
        scores = [c.score for c in candidates]
        low, high = min(scores), max(scores)
        return [1.0 if high == low else (s - low) / (high - low) for s in scores]


def _merged(a: Evidence, b: Evidence) -> Evidence:
    """Both retrievers' evidence; both collaborative lines kept (``merge_evidence`` keeps the first only)."""
    lines = [line for e in (a, b) for line in (e.collaborative or "").split("; ") if line]
    return replace(merge_evidence(a, b), collaborative="; ".join(dict.fromkeys(lines)) or None)


def fuse_available(parts: Mapping[str, Retriever | None], weights: Mapping[str, float], rrf_k: float = 60.0,
                   method: str = "rrf") -> Retriever | None:  # fmt: skip
    """The named retrievers that exist for this profile and have a positive weight, fused (one alone as is).

    ``parts`` maps a name ("text", "cf", "dialogue", "popularity") to a retriever, or None where the profile
    does not allow it (no history for the collaborative model); names without a weight are left out.
    """
    chosen = [(name, r) for name, r in parts.items() if r is not None and weights.get(name, 0.0) > 0]
    if not chosen:
        return None
    if len(chosen) == 1:
        return chosen[0][1]
    return HybridRetriever([r for _, r in chosen], method=method, weights=[weights[n] for n, _ in chosen], rrf_k=rrf_k)
