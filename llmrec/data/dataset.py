"""The raw data set: a catalogue of items and a table of interactions, as loaded, before any filtering."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from llmrec.errors import DataError
from llmrec.types import Interaction, Item

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Interactions:
    """Columnar interactions; ``ratings`` is NaN where the source has no rating.

    Columnar because data sets reach millions of rows; iterate for typed ``Interaction`` values.
    """

    user_ids: np.ndarray  # dtype object (str)
    item_ids: np.ndarray  # dtype object (str)
    ratings: np.ndarray  # float64
    timestamps: np.ndarray  # int64

    def __post_init__(self) -> None:
        n = len(self.user_ids)
        if not (len(self.item_ids) == len(self.ratings) == len(self.timestamps) == n):
            raise DataError("interaction columns have different lengths; rebuild them with Interactions.from_rows")

    def __len__(self) -> int:
        return len(self.user_ids)

    def __iter__(self) -> Iterator[Interaction]:
        for u, i, r, t in zip(self.user_ids, self.item_ids, self.ratings, self.timestamps):
            yield Interaction(str(u), str(i), None if np.isnan(r) else float(r), int(t))

    @classmethod
    def from_rows(cls, rows: Iterable[Interaction]) -> Interactions:
        users, items, ratings, stamps = [], [], [], []
        for row in rows:
            users.append(row.user_id)
            items.append(row.item_id)
            ratings.append(np.nan if row.rating is None else row.rating)
            stamps.append(row.timestamp)
        return cls.from_columns(users, items, ratings, stamps)

    @classmethod
    def from_columns(cls, users: Iterable, items: Iterable, ratings: Iterable, timestamps: Iterable) -> Interactions:
        return cls(
            user_ids=np.asarray([str(u) for u in users], dtype=object),
            item_ids=np.asarray([str(i) for i in items], dtype=object),
            ratings=np.asarray(list(ratings), dtype=np.float64),
            timestamps=np.asarray(list(timestamps), dtype=np.int64),
        )


@dataclass(frozen=True)
class Dataset:
    """A named catalogue plus interactions, ids as the source spells them.

    Every loader ends here, so the catalogue's text is cleaned here, once: titles and other text fields lose lone
    surrogates and control characters (``llmrec.data.item_text.clean_item``), and items without a usable id or
    title are dropped (they could be neither shown nor recommended; preprocessing then drops their
    interactions). The interactions are kept as loaded.
    """

    name: str
    items: Mapping[str, Item]
    interactions: Interactions
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", _clean_catalogue(self.name, self.items))
        if not self.items:
            raise DataError(f"data set {self.name!r} has an empty catalogue; check its item file")

    def item(self, item_id: str) -> Item:
        try:
            return self.items[item_id]
        except KeyError:
            raise DataError(f"unknown item id {item_id!r} in data set {self.name!r}") from None

    def users(self) -> list[str]:
        return sorted(set(self.interactions.user_ids.tolist()), key=natural_key)


def _clean_catalogue(name: str, items: Mapping[str, Item]) -> Mapping[str, Item]:
    """``items`` with clean text and without the items that have no usable id or title (the same mapping when
    nothing changes)."""
    from llmrec.data.item_text import clean_item

    cleaned: dict[str, Item] = {}
    untitled = bad_ids = 0
    changed = False
    for item_id, item in items.items():
        fixed = clean_item(item)
        if not (isinstance(item_id, str) and item_id.isprintable() and item_id.strip() and item_id == item.item_id):
            bad_ids += 1
        elif not fixed.title:
            untitled += 1
        else:
            cleaned[item_id] = fixed
            changed = changed or fixed is not item
            continue
        changed = True
    if untitled or bad_ids:
        log.warning("%s: dropped %d item(s) without a title and %d with an unusable id", name, untitled, bad_ids)
    return cleaned if changed else items


def natural_key(identifier: str) -> tuple[int, int, str]:
    """Sort numeric ids numerically and the rest lexicographically, numbers first."""
    return (0, int(identifier), "") if identifier.isdigit() else (1, 0, identifier)
