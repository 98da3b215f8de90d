"""Text retrieval: nearest items in embedding space to what the user liked and said.

Query vectors:
- ``history``: the recency- and rating-weighted mean of the liked items' vectors;
- ``recent``: the plain mean of the most recent liked items (when the history is longer than that);
- ``preference``: each stated preference's positive part, embedded.
Each query fetches a pool from the index (seen, disliked and excluded items never come back); the
pooled items are then rescored exactly as the weighted mean of their similarities to the queries,
minus a penalty for similarity to negatives (``"nothing gory"``) and to disliked items: the part of
that similarity above its median over the pool, so a negative that resembles every item (MiniLM
puts most short texts at 0.1-0.3) shifts nothing and only items that stand out are pushed down.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from llmrec.embedding import Embedder
from llmrec.index.base import Filter, VectorIndex
from llmrec.profile import HALF_LIFE, liked_weights, parse_preferences
from llmrec.retrieval import top_candidates
from llmrec.types import Candidate, Evidence, Item, UserProfile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Query:
    label: str  # "history", "recent" or "preference"
    vector: np.ndarray
    weight: float
    text: str = ""  # the stated preference, for evidence


@dataclass(frozen=True)
class ProfileVectors:
    """Everything the text retriever derives from a profile, in vector form."""

    queries: tuple[Query, ...]
    negatives: np.ndarray  # (n, dim): negative phrases and disliked items
    liked_ids: tuple[str, ...]
    liked: np.ndarray  # (len(liked_ids), dim)


class TextRetriever:
    """Cosine-similarity retrieval over item embeddings; see the module docstring."""

    name = "text"

    def __init__(self, index: VectorIndex, embedder: Embedder, items: Mapping[str, Item] | None = None,
                 pool: int = 200, recent: int = 10, recent_weight: float = 0.5, negative_weight: float = 1.0,
                 half_life: float = HALF_LIFE, where: Filter | None = None) -> None:  # fmt: skip
        self.index = index
        self.embedder = embedder
        self.items = items
        self.pool = pool
        self.recent = recent
        self.recent_weight = recent_weight
        self.negative_weight = negative_weight
        self.half_life = half_life
        self.where = where

    def profile_vectors(self, profile: UserProfile) -> ProfileVectors:
        weights = liked_weights(profile, half_life=self.half_life)
        stored = self.index.get_vectors(list(weights))
        liked_ids = tuple(i for i in weights if i in stored)  # most recent first
        dim = self.index.spec.dim
        liked = np.stack([stored[i] for i in liked_ids]) if liked_ids else np.zeros((0, dim), np.float32)
        queries: list[Query] = []
        if liked_ids:
            w = np.array([weights[i] for i in liked_ids], dtype=np.float32)
            queries.append(Query("history", _unit(w @ liked), 1.0))
            if len(liked_ids) > self.recent:
                queries.append(Query("recent", _unit(liked[: self.recent].mean(axis=0)), self.recent_weight))
        parsed = [parse_preferences(t) for t in profile.stated_preferences]
        positives = [p for p in parsed if p.positive]
        negative_texts = [n for p in parsed for n in p.negatives]
        texts = [p.positive for p in positives] + negative_texts
        embedded = self.embedder.embed(texts) if texts else np.zeros((0, dim), np.float32)  # no model load if unneeded
        queries += [Query("preference", embedded[j], 1.0, p.text) for j, p in enumerate(positives)]
        disliked = self.index.get_vectors(list(profile.disliked))
        negatives = [*embedded[len(positives) :], *disliked.values()]
        neg = np.stack(negatives) if negatives else np.zeros((0, dim), np.float32)
        return ProfileVectors(tuple(queries), neg, liked_ids, liked)

    def retrieve(self, profile: UserProfile, k: int) -> list[Candidate]:
        if k <= 0:
            return []
        pv = self.profile_vectors(profile)
        if not pv.queries:
            return []
        seen = profile.seen
        pool_size = max(self.pool, 3 * k)
        hit_sets: list[set[str]] = []
        pooled: dict[str, None] = {}
        for q in pv.queries:
            hits = self.index.query(q.vector, pool_size, where=self.where, exclude=seen)
            hit_sets.append({h.item_id for h in hits})
            pooled.update((h.item_id, None) for h in hits if self.items is None or h.item_id in self.items)
        vectors = self.index.get_vectors(list(pooled))
        ids = [i for i in pooled if i in vectors and i not in seen]
        if not ids:
            return []
        matrix = np.stack([vectors[i] for i in ids])
        sims = np.stack([q.vector for q in pv.queries]) @ matrix.T  # (queries, pool)
        weights = np.array([q.weight for q in pv.queries], dtype=np.float32)
        scores = weights @ sims / weights.sum()
        if len(pv.negatives):  # penalise only similarity above what is typical for this negative in the pool
            neg = pv.negatives @ matrix.T
            scores -= self.negative_weight * np.clip(neg - np.median(neg, axis=1, keepdims=True), 0.0, None).max(axis=0)
        liked_sims = pv.liked @ matrix.T if len(pv.liked_ids) else None
        best = top_candidates(dict(zip(ids, scores.tolist())), k, banned=seen)
        column = {item_id: c for c, item_id in enumerate(ids)}
        out = []
        for item_id, score in best:
            c = column[item_id]
            similar = ()
            if liked_sims is not None:
                order = np.argsort(-liked_sims[:, c], kind="stable")[:3]
                similar = tuple(pv.liked_ids[j] for j in order if liked_sims[j, c] > 0)
            matched = tuple(dict.fromkeys(
                q.text for q, hit in zip(pv.queries, hit_sets) if q.label == "preference" and item_id in hit
            ))  # fmt: skip
            out.append(Candidate(item_id, score, ("text",), self._evidence(item_id, similar, matched, score)))
        return out

    def _evidence(self, item_id: str, similar: tuple[str, ...], matched: tuple[str, ...], score: float) -> Evidence:
        shared: dict[str, tuple[str, ...]] = {"genres": (), "keywords": (), "tags": ()}
        if self.items is not None and similar and item_id in self.items:
            item = self.items[item_id]
            for field in shared:
                liked_values = {v for s in similar if s in self.items for v in getattr(self.items[s], field)}
                shared[field] = tuple(v for v in getattr(item, field) if v in liked_values)
        return Evidence(
            shared_genres=shared["genres"],
            shared_keywords=shared["keywords"],
            shared_tags=shared["tags"],
            similar_liked=similar,
            matched_preferences=matched,
            stage_scores=(("text", float(score)),),
        )


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm > 0 else vector.astype(np.float32)
