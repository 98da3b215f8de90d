"""Collaborative retrieval: any fitted scorer behind a one-method protocol.

The scorer works on dense ids (``SequenceData``'s numbering); this retriever maps the profile's
original ids in and the scores back out, and masks everything the profile has seen. A known user
is scored as themselves; anyone else (a newcomer with liked titles) is folded in from the history
with user id -1. Items the scorer never saw (dropped by the k-core filter) cannot be retrieved here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from llmrec.types import Candidate, Evidence, Item, UserProfile

if TYPE_CHECKING:
    from llmrec.data.split import SequenceData

UNKNOWN_USER = -1


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
        plural = "s" if history.size != 1 else ""
        basis = f"people whose histories overlap yours chose it too ({self.label}, from {history.size} item{plural})"
        out = []
        for d in order:
            evidence = Evidence(collaborative=basis, stage_scores=((self.name, float(scores[d])),))
            out.append(Candidate(self.seq.item_ids[d], float(scores[d]), (self.name,), evidence))
        return out
