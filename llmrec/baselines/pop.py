"""Most-popular: every user gets the items with the most training interactions."""

from __future__ import annotations

import numpy as np

from llmrec.baselines.base import Scorer, TrainData


class MostPop(Scorer):
    """Score = number of training users who interacted with the item (the same for every user)."""

    name = "pop"

    def _fit(self, train: TrainData) -> None:
        self.counts_ = train.item_counts.astype(np.float32)

    def _score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        return np.broadcast_to(self.counts_, (len(users), len(self.counts_)))
