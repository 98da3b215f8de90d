"""Collaborative retrieval: any fitted scorer behind a one-method protocol.

The scorer works on dense ids (``SequenceData``'s numbering); this retriever maps the profile's
original ids in and the scores back out, and masks everything the profile has seen. A known user
is scored as themselves; anyone else (a newcomer with liked titles) is folded in from the history
with user id -1. Items the scorer never saw (dropped by the k-core filter) cannot be retrieved here.

The evidence speaks of films, not models: for each candidate, the liked history item whose fans most
often liked the candidate too (cosine of the two items' sets of users who rated them 4 or more, or at
least their own mean) becomes "people who liked <that film> also liked it"; the model's name and score
stay in the candidate's stage scores.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from scipy import sparse

from llmrec.profile import liked_weights, split_title_year
from llmrec.types import Candidate, Evidence, Item, UserProfile

if TYPE_CHECKING:
    from llmrec.data.split import SequenceData

UNKNOWN_USER = -1
ANCHORS = 50  # most recent liked items considered as the film a candidate's fans also liked
_FANS: dict[int, tuple[weakref.ref, sparse.csc_matrix]] = {}


def fans_matrix(seq: SequenceData) -> sparse.csc_matrix:
    """users x items, 1 where the user liked the item (rated >= 4 or >= their own mean; unrated counts), cached."""
    cached = _FANS.get(id(seq))
    if cached is not None and cached[0]() is seq:
        return cached[1]
    rows, cols = [], []
    for user, (items, ratings) in enumerate(zip(seq.sequences, seq.ratings)):
        rated = ratings[~np.isnan(ratings)]
        threshold = min(4.0, float(rated.mean())) if rated.size else 0.0
        liked = items[np.isnan(ratings) | (ratings >= threshold)]
        rows.append(np.full(liked.size, user, dtype=np.int64))
        cols.append(liked.astype(np.int64))
    row, col = (np.concatenate(rows), np.concatenate(cols)) if rows else (np.zeros(0, int), np.zeros(0, int))
    matrix = sparse.csc_matrix((np.ones(row.size, np.float32), (row, col)), shape=(seq.n_users, seq.n_items))
    matrix.data[:] = 1.0
    _FANS[id(seq)] = (weakref.ref(seq), matrix)
    return matrix


@runtime_checkable
class CollaborativeScorer(Protocol):
    """``score(users, histories) -> (len(users), n_items)`` float32; users are dense ids or -1."""

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray: ...


class CollaborativeRetriever:
    """Top-k of a collaborative scorer for one profile, seen items masked."""

    name = "cf"

    def __init__(self, scorer: CollaborativeScorer, seq: SequenceData, label: str = "collaborative model",
                 items: Mapping[str, Item] | None = None, name: str = "cf") -> None:  # fmt: skip
        self.scorer = scorer
        self.seq = seq
        self.label = label
        self.items = items
        self.name = name

    def dense_history(self, profile: UserProfile) -> np.ndarray:
        """The profile's history in time order as dense ids (items the model does not know are skipped)."""
        index = self.seq.item_index
        ordered = sorted(profile.history, key=lambda e: (e.timestamp is None, e.timestamp or 0))
        dense = [index[e.item_id] for e in ordered if e.item_id in index]
        return np.asarray(dense, dtype=np.int64)

    def retrieve(self, profile: UserProfile, k: int) -> list[Candidate]:
        if k <= 0:
            return []
        user = self.seq.user_index.get(profile.user_id, UNKNOWN_USER) if profile.user_id is not None else UNKNOWN_USER
        history = self.dense_history(profile)
        if user == UNKNOWN_USER and history.size == 0:
            return []
        scores = np.array(self.scorer.score(np.array([user], dtype=np.int64), [history])[0], dtype=np.float32)
        if scores.shape != (self.seq.n_items,):
            raise ValueError(f"scorer returned {scores.shape} scores, expected ({self.seq.n_items},)")
        index = self.seq.item_index
        banned = [index[i] for i in profile.seen if i in index]
        scores[banned] = -np.inf
        if self.items is not None:
            unknown = [d for d, item_id in enumerate(self.seq.item_ids) if item_id not in self.items]
            scores[unknown] = -np.inf
        finite = np.flatnonzero(np.isfinite(scores))
        if finite.size > k:
            finite = finite[np.argpartition(-scores[finite], k - 1)[:k]]
        order = finite[np.lexsort((finite, -scores[finite]))]
        anchors = self.anchors(profile, order)
        out = []
        for d in order:
            anchor = anchors.get(int(d))
            if anchor is not None and self.items is not None and anchor in self.items:
                title = split_title_year(self.items[anchor].display_title)[0]
                evidence = Evidence(similar_liked=(anchor,), collaborative=f"people who liked {title} also liked it",
                                    stage_scores=((self.name, float(scores[d])),))  # fmt: skip
            else:
                evidence = Evidence(collaborative="people with tastes like yours liked it",
                                    stage_scores=((self.name, float(scores[d])),))  # fmt: skip
            out.append(Candidate(self.seq.item_ids[d], float(scores[d]), (self.name,), evidence))
        return out

    def anchors(self, profile: UserProfile, candidates: np.ndarray) -> dict[int, str]:
        """Candidate dense id -> the liked history item (original id) whose fans liked it most (when any did)."""
        index = self.seq.item_index
        liked = [index[i] for i in liked_weights(profile) if i in index][:ANCHORS]  # most recent first
        if not liked or candidates.size == 0:
            return {}
        fans = fans_matrix(self.seq)
        mine, theirs = fans[:, liked], fans[:, candidates]
        both = (mine.T @ theirs).toarray()  # (liked, candidates): users who liked both
        size = np.sqrt(np.outer(np.asarray(mine.sum(axis=0)).ravel(), np.asarray(theirs.sum(axis=0)).ravel()))
        cosine = np.divide(both, size, out=np.zeros_like(both, dtype=np.float64), where=size > 0)
        best = cosine.argmax(axis=0)  # ties: the most recent liked item
        return {int(d): self.seq.item_ids[liked[b]] for j, (d, b) in enumerate(zip(candidates, best)) if both[b, j] > 0}

