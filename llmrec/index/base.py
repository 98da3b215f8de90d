"""The vector index interface, its typed values, and the helpers every implementation shares.

Scores are cosine similarities (vectors are unit length). Item metadata is flat scalars so that
Chroma can filter on it: ``year`` (int), one boolean ``genre_<slug>`` key per genre, ``hash``
(the content hash that decides re-embedding) and ``title``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from llmrec.errors import IndexStoreError
from llmrec.index.lock import OnWait, WriterLock
from llmrec.index.lock import StoreBusy as StoreBusy  # re-exported: the writer lock lives in llmrec.index.lock
from llmrec.index.lock import StoreBusyError as StoreBusyError
from llmrec.index.lock import exclusive_lock as exclusive_lock

SCHEMA_VERSION = 1
Scalar = str | int | float | bool
Metadata = Mapping[str, Scalar]


@dataclass(frozen=True)
class Hit:
    """One query result: an item and its cosine similarity to the query."""

    item_id: str
    score: float


@dataclass(frozen=True)
class StoreSpec:
    """What made a store; opening it with a different spec is refused."""

    embedder: str
    dim: int
    template: str  # item text template ref, e.g. "item_text@1"
    distance: str = "cosine"
    schema: int = SCHEMA_VERSION

    def as_metadata(self) -> dict[str, Scalar]:
        return {"llmrec_embedder": self.embedder, "llmrec_dim": self.dim, "llmrec_template": self.template,
                "llmrec_distance": self.distance, "llmrec_schema": self.schema}  # fmt: skip

    @classmethod
    def from_metadata(cls, meta: Mapping[str, object] | None) -> StoreSpec | None:
        meta = meta or {}
        try:
            return cls(str(meta["llmrec_embedder"]), int(meta["llmrec_dim"]), str(meta["llmrec_template"]),  # type: ignore[arg-type]
                       str(meta["llmrec_distance"]), int(meta["llmrec_schema"]))  # type: ignore[arg-type]  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return None

    def describe(self) -> str:
        return f"embedder {self.embedder} (dim {self.dim}), {self.template}, {self.distance}, schema {self.schema}"


def check_spec(found: StoreSpec | None, wanted: StoreSpec, location: str) -> None:
    """Refuse a store made with another embedder, template, distance or schema."""
    if found is None:
        raise IndexStoreError(
            f"store {location} has no llmrec metadata (not made by llmrec, or half-created); "
            "rebuild it with --rebuild"
        )
    if found != wanted:
        raise IndexStoreError(
            f"store {location} was built with {found.describe()}, but this run uses {wanted.describe()}; "
            "rebuild it with --rebuild (or pass the matching --embedder)"
        )


@dataclass(frozen=True)
class Filter:
    """Metadata conditions: any of ``genres``, none of ``exclude_genres``, year in [year_min, year_max]."""

    genres: tuple[str, ...] = ()
    exclude_genres: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None

    def matches(self, meta: Metadata) -> bool:
        """The same semantics the Chroma ``where`` translation has, for indexes that filter themselves."""
        if self.genres and not any(meta.get(genre_key(g)) is True for g in self.genres):
            return False
        if any(meta.get(genre_key(g)) is True for g in self.exclude_genres):
            return False
        year = meta.get("year")
        if self.year_min is not None and not (isinstance(year, int) and year >= self.year_min):
            return False
        return not (self.year_max is not None and not (isinstance(year, int) and year <= self.year_max))

    @property
    def empty(self) -> bool:
        return not (self.genres or self.exclude_genres or self.year_min is not None or self.year_max is not None)


def genre_key(genre: str) -> str:
    """``Sci-Fi`` -> ``genre_sci_fi``: one boolean metadata key per genre."""
    return "genre_" + re.sub(r"[^0-9a-z]+", "_", genre.lower()).strip("_")


@runtime_checkable
class VectorIndex(Protocol):
    """Item vectors with metadata; cosine similarity queries with filters and exclusions."""

    spec: StoreSpec
    location: str

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[str],
               metadata: Sequence[Metadata]) -> None: ...  # fmt: skip

    def query(self, vector: np.ndarray, k: int, where: Filter | None = None,
              exclude: Sequence[str] | frozenset[str] = ()) -> list[Hit]: ...  # fmt: skip

    def delete(self, ids: Sequence[str]) -> None: ...

    def count(self) -> int: ...

    def ids(self) -> list[str]: ...

    def get_metadata(self, ids: Sequence[str]) -> dict[str, dict[str, Scalar]]: ...

    def get_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]: ...

    def clear(self) -> None: ...

    def writing(self, wait: float | None = None,
                on_wait: OnWait | None = None) -> contextlib.AbstractContextManager[WriterLock | None]:  # fmt: skip
        """Hold the index's writer lock (waiting up to ``wait`` s for another writer, None = as long as it takes)."""
        ...


def validate_upsert(index: VectorIndex, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[str],
                    metadata: Sequence[Metadata]) -> np.ndarray:  # fmt: skip
    """Shapes agree, ids are unique non-empty strings, vectors have the store's dimension and are finite."""
    vectors = np.asarray(vectors, dtype=np.float32)
    n = len(ids)
    if vectors.ndim != 2 or vectors.shape[0] != n or len(documents) != n or len(metadata) != n:
        raise IndexStoreError(
            f"upsert into {index.location}: {n} ids, vectors {vectors.shape}, {len(documents)} documents, "
            f"{len(metadata)} metadata rows; they must agree"
        )
    if n and vectors.shape[1] != index.spec.dim:
        raise IndexStoreError(
            f"upsert into {index.location}: vectors have dimension {vectors.shape[1]}, the store holds "
            f"{index.spec.dim}; rebuild it with --rebuild"
        )
    if len(set(ids)) != n or any(not isinstance(i, str) or not i for i in ids):
        raise IndexStoreError(f"upsert into {index.location}: item ids must be unique non-empty strings")
    if not np.isfinite(vectors).all():
        raise IndexStoreError(f"upsert into {index.location}: vectors contain NaN or infinite values")
    return vectors
