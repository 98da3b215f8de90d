"""Exact in-memory vector index (numpy): the reference for recall, and the fake for unit tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np

from llmrec.index.base import Filter, Hit, Metadata, Scalar, StoreSpec, validate_upsert
from llmrec.index.lock import OnWait


class MemoryIndex:
    """Brute-force cosine similarity over a dense matrix; rows are swapped out on delete."""

    def __init__(self, spec: StoreSpec, location: str = "memory") -> None:
        self.spec = spec
        self.location = location
        self.clear()

    def clear(self) -> None:
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._buffer = np.zeros((0, self.spec.dim), dtype=np.float32)  # grows by doubling; rows [:count] used
        self._documents: list[str] = []
        self._metadata: list[dict[str, Scalar]] = []

    @property
    def _vectors(self) -> np.ndarray:
        return self._buffer[: len(self._ids)]

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[str],
               metadata: Sequence[Metadata]) -> None:  # fmt: skip
        vectors = validate_upsert(self, ids, vectors, documents, metadata)
        new = [i for i in ids if i not in self._row]
        if len(self._ids) + len(new) > len(self._buffer):
            grown = np.zeros((max(2 * len(self._buffer), len(self._ids) + len(new)), self.spec.dim), np.float32)
            grown[: len(self._ids)] = self._vectors
            self._buffer = grown
        if new:
            for item_id in new:
                self._row[item_id] = len(self._ids)
                self._ids.append(item_id)
                self._documents.append("")
                self._metadata.append({})
        for item_id, vector, document, meta in zip(ids, vectors, documents, metadata):
            row = self._row[item_id]
            self._buffer[row] = vector
            self._documents[row] = document
            self._metadata[row] = dict(meta)

    def query(self, vector: np.ndarray, k: int, where: Filter | None = None,
              exclude: Sequence[str] | frozenset[str] = ()) -> list[Hit]:  # fmt: skip
        if k <= 0 or not self._ids:
            return []
        scores = self._vectors @ np.asarray(vector, dtype=np.float32).reshape(-1)
        allowed = np.ones(len(self._ids), dtype=bool)
        for item_id in exclude:
            row = self._row.get(item_id)
            if row is not None:
                allowed[row] = False
        if where is not None and not where.empty:
            allowed &= np.fromiter((where.matches(m) for m in self._metadata), dtype=bool, count=len(self._ids))
        rows = np.flatnonzero(allowed)
        if rows.size > k:
            rows = rows[np.argpartition(-scores[rows], k - 1)[:k]]
        rows = rows[np.lexsort((rows, -scores[rows]))]  # score descending, ties by insertion order
        return [Hit(self._ids[r], float(scores[r])) for r in rows]

    def delete(self, ids: Sequence[str]) -> None:
        doomed = {self._row[i] for i in ids if i in self._row}
        if not doomed:
            return
        keep = [r for r in range(len(self._ids)) if r not in doomed]
        self._buffer = self._vectors[keep]
        self._ids = [self._ids[r] for r in keep]
        self._documents = [self._documents[r] for r in keep]
        self._metadata = [self._metadata[r] for r in keep]
        self._row = {item_id: r for r, item_id in enumerate(self._ids)}

    def count(self) -> int:
        return len(self._ids)

    def ids(self) -> list[str]:
        return list(self._ids)

    def get_metadata(self, ids: Sequence[str]) -> dict[str, dict[str, Scalar]]:
        return {i: dict(self._metadata[self._row[i]]) for i in ids if i in self._row}

    def get_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        return {i: self._vectors[self._row[i]].copy() for i in ids if i in self._row}

    def get_documents(self, ids: Sequence[str]) -> dict[str, str]:
        return {i: self._documents[self._row[i]] for i in ids if i in self._row}

    @contextlib.contextmanager
    def writing(self, wait: float | None = None, on_wait: OnWait | None = None) -> Iterator[None]:
        """Nothing to lock: the index lives in this process's memory."""
        yield
