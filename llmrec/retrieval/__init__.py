"""Candidate retrieval: ``Retriever.retrieve(profile, k) -> list[Candidate]``.

Implementations live in ``text`` (item embeddings in a vector index), ``collaborative`` (any
collaborative scorer), ``fusion`` (hybrid: reciprocal-rank or weighted fusion) and ``diversify``
(MMR over item embeddings). Every retriever keeps one contract: at most ``k`` candidates, none the
profile has seen, disliked or excluded, no duplicates, catalogue items only, scores non-increasing.
This module holds the protocol and the helpers that keep the contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from llmrec.types import Candidate, Evidence, UserProfile


@runtime_checkable
class Retriever(Protocol):
    name: str

    def retrieve(self, profile: UserProfile, k: int) -> list[Candidate]: ...


def top_candidates(scores: Mapping[str, float], k: int, banned: Iterable[str] = ()) -> list[tuple[str, float]]:
    """The ``k`` best (id, score) pairs, score descending, ties by id; ``banned`` ids and NaN dropped."""
    banned = frozenset(banned)
    pairs = [(i, float(s)) for i, s in scores.items() if i not in banned and s == s]
    pairs.sort(key=lambda p: (-p[1], p[0]))
    return pairs[: max(k, 0)]


def _union(*parts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(x for part in parts for x in part))


def merge_evidence(a: Evidence, b: Evidence) -> Evidence:
    """Both pieces of evidence, without repeats (first one's order first)."""
    return Evidence(
        shared_genres=_union(a.shared_genres, b.shared_genres),
        shared_keywords=_union(a.shared_keywords, b.shared_keywords),
        shared_tags=_union(a.shared_tags, b.shared_tags),
        similar_liked=_union(a.similar_liked, b.similar_liked),
        matched_preferences=_union(a.matched_preferences, b.matched_preferences),
        collaborative=a.collaborative or b.collaborative,
        stage_scores=a.stage_scores + tuple(s for s in b.stage_scores if s not in a.stage_scores),
    )


__all__ = ["Retriever", "merge_evidence", "top_candidates"]
