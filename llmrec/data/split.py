"""Preprocessing and the leave-one-out split of the LlamaRec paper.

Steps, in order (DESIGN.md, evaluation protocol):
1. no rating threshold: every interaction counts as implicit feedback;
2. interactions on items that are missing from the catalogue or have no title are dropped;
3. iterative k-core (default 5) on items, then users, until nothing changes;
4. dense ids: users and items numbered 0.. in the natural order of their original ids;
5. each user's sequence ordered by (timestamp, dense item id);
6. last item = test, second-to-last = validation, the rest = training.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from llmrec.data.dataset import Dataset, natural_key
from llmrec.errors import DataError

MIN_SEQUENCE = 3  # one training item, one validation item, one test item


@dataclass(frozen=True)
class SequenceData:
    """Per-user ordered sequences over dense ids, with the maps back to the data set's own ids."""

    name: str
    user_ids: tuple[str, ...]  # dense user index -> original user id
    item_ids: tuple[str, ...]  # dense item index -> original item id
    sequences: tuple[np.ndarray, ...]  # per user, dense item indices in (timestamp, item) order
    ratings: tuple[np.ndarray, ...]  # aligned with sequences; NaN where unknown
    timestamps: tuple[np.ndarray, ...]  # aligned with sequences

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    @cached_property
    def user_index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.user_ids)}

    @cached_property
    def item_index(self) -> dict[str, int]:
        return {it: i for i, it in enumerate(self.item_ids)}

    # Leave-one-out views -------------------------------------------------------------------
    def train(self, user: int) -> np.ndarray:
        """Training items of a user: all but the last two."""
        return self.sequences[user][:-2]

    def valid_input(self, user: int) -> np.ndarray:
        return self.sequences[user][:-2]

    def valid_target(self, user: int) -> int:
        return int(self.sequences[user][-2])

    def test_input(self, user: int) -> np.ndarray:
        """What a model sees when predicting the test item: training plus validation."""
        return self.sequences[user][:-1]

    def test_target(self, user: int) -> int:
        return int(self.sequences[user][-1])

    def stats(self) -> dict[str, int]:
        return {"users": self.n_users, "items": self.n_items, "interactions": self.n_interactions}


def k_core(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Drop items, then users, with fewer than ``k`` interactions, repeating until stable."""
    while True:
        before = len(frame)
        item_counts = frame.groupby("item", sort=False)["item"].transform("size")
        frame = frame[item_counts >= k]
        user_counts = frame.groupby("user", sort=False)["user"].transform("size")
        frame = frame[user_counts >= k]
        if len(frame) == before:
            return frame


def preprocess(dataset: Dataset, min_count: int = 5) -> SequenceData:
    """Apply the LlamaRec preprocessing and return ordered per-user sequences."""
    if min_count < 1:
        raise DataError(f"min_count must be at least 1, got {min_count}")
    inter = dataset.interactions
    titled = {iid for iid, item in dataset.items.items() if item.title.strip()}
    frame = pd.DataFrame(
        {
            "user": inter.user_ids,
            "item": inter.item_ids,
            "rating": inter.ratings,
            "timestamp": inter.timestamps,
        }
    )
    frame = frame[frame["item"].isin(titled)]
    frame = k_core(frame, min_count)
    if frame.empty:
        raise DataError(
            f"data set {dataset.name!r} is too small: nothing is left after the {min_count}-core filter; "
            "add interactions or lower min_count"
        )
    users = tuple(sorted(frame["user"].unique().tolist(), key=natural_key))
    items = tuple(sorted(frame["item"].unique().tolist(), key=natural_key))
    frame = frame.assign(
        uidx=frame["user"].map({u: i for i, u in enumerate(users)}).astype(np.int64),
        iidx=frame["item"].map({it: i for i, it in enumerate(items)}).astype(np.int64),
    )
    frame = frame.sort_values(["uidx", "timestamp", "iidx"], kind="mergesort")
    bounds = np.flatnonzero(np.diff(frame["uidx"].to_numpy())) + 1
    item_col = np.split(frame["iidx"].to_numpy(), bounds)
    rating_col = np.split(frame["rating"].to_numpy(dtype=np.float64), bounds)
    stamp_col = np.split(frame["timestamp"].to_numpy(dtype=np.int64), bounds)
    short = [users[i] for i, seq in enumerate(item_col) if len(seq) < MIN_SEQUENCE]
    if short:
        raise DataError(
            f"data set {dataset.name!r}: {len(short)} users have fewer than {MIN_SEQUENCE} interactions after "
            f"filtering (e.g. user {short[0]!r}); use min_count >= {MIN_SEQUENCE}"
        )
    return SequenceData(
        name=dataset.name,
        user_ids=users,
        item_ids=items,
        sequences=tuple(item_col),
        ratings=tuple(rating_col),
        timestamps=tuple(stamp_col),
    )
