"""Chroma-backed vector index: the only module that imports chromadb.

Two ways in: an embedded store in a folder (``PersistentClient``; one writer at a time, enforced
with ``llmrec.index.lock``: a second writer, or a reader that finds a store being written, waits for it) or a
Chroma server (``HttpClient``, ``--chroma-url http://host:port``) reached
with a timeout so a down or silent server is a clear error instead of a hang. Telemetry is off.
The collection uses cosine space and records the ``StoreSpec`` that made it.

Chroma's embedded client keeps the vector segment it loaded in process memory and fails on ids another process
added since ("Error finding id", "Nothing found on disk"); so every operation first checks the lock file's write
counter and, when another process has finished writing since, reconnects this process's client.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from llmrec.errors import IndexStoreError, NetworkError
from llmrec.index.base import Filter, Hit, Metadata, Scalar, StoreSpec, check_spec, genre_key, validate_upsert
from llmrec.index.lock import OnWait, WriterLock, exclusive_lock, holder, own_writes, read_state, wait_for_writer

log = logging.getLogger(__name__)

DEFAULT_COLLECTION = "items"
DEFAULT_TIMEOUT = 10.0
LOCK_NAME = ".llmrec-write.lock"
_PAGE = 5000


def _settings():
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False, allow_reset=False)


def _forget_embedded_system(path: Path) -> None:
    """Drop chromadb's per-process cached system for ``path`` (it caches a broken one after a failed open)."""
    try:
        from chromadb.api.client import SharedSystemClient

        system = SharedSystemClient._identifier_to_system.pop(str(path), None)
        SharedSystemClient._identifier_to_refcount.pop(str(path), None)
        if system is not None:
            with contextlib.suppress(Exception):
                system.stop()
    except (ImportError, AttributeError):  # pragma: no cover - chromadb internals moved
        pass


def _is_store_file(path: Path) -> bool:
    return path.name in ("chroma.sqlite3", LOCK_NAME) or path.name.startswith("chroma.sqlite3-") or (
        path.is_dir() and len(path.name) == 36 and path.name.count("-") == 4  # a segment folder (uuid)
    )


SQLITE_HEADER = b"SQLite format 3\x00"


def _sqlite_problem(folder: Path) -> str | None:
    """What is wrong with the store's ``chroma.sqlite3`` before Chroma sees it (None: fine or absent).

    Chroma would silently make a fresh database in a zero-byte file and orphan the old segment folders."""
    try:
        with open(folder / "chroma.sqlite3", "rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"its chroma.sqlite3 cannot be read ({exc.strerror})"
    if not head:
        return "its chroma.sqlite3 is empty (0 bytes)"
    return None if head == SQLITE_HEADER else "its chroma.sqlite3 is not a SQLite database"


def _wipe(folder: Path) -> None:
    """Remove a corrupted store's files, keeping the lock file (other processes may be waiting on it)."""
    log.warning("store %s is corrupted; --rebuild removes it and starts again", folder)
    for p in folder.iterdir():
        if p.name != LOCK_NAME:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    _forget_embedded_system(folder)


# This process's view of each store folder: the write count its Chroma system has caught up with, and how many
# times it reconnected (instances compare their generation and reconnect when it moved).
_SYNC = threading.Lock()
_SYSTEM_WRITES: dict[str, int] = {}
_GENERATION: dict[str, int] = {}


def _catch_up(folder: Path, writing: bool = False) -> int:
    """Drop this process's Chroma system for ``folder`` when another process finished writing since it was made;
    returns the folder's generation. Never while another process writes (reconnect after it ends), nor while a
    thread of this process writes, unless the caller is that writer (``writing``)."""
    lock = folder / LOCK_NAME
    key = str(folder)
    state = read_state(lock)
    with _SYNC:
        seen = _SYSTEM_WRITES.setdefault(key, state.writes)
        generation = _GENERATION.setdefault(key, 0)
        if state.writes == seen:
            return generation
        foreign = state.writes < seen or bool(set(range(seen + 1, state.writes + 1)) - own_writes(lock))
        if not foreign:
            _SYSTEM_WRITES[key] = state.writes
            return generation
        if not writing and holder(lock) is not None:
            return generation  # mid-write (another process, or a thread of ours): catch up once it has ended
        log.info("store %s was written by another process; reconnecting", folder)
        _forget_embedded_system(folder)
        _SYSTEM_WRITES[key] = state.writes
        _GENERATION[key] = generation + 1
        return generation + 1


def _open_embedded_client(path: Path):
    import chromadb

    try:
        client = chromadb.PersistentClient(path=str(path), settings=_settings())
        client.list_collections()  # touches the sqlite file: garbage fails here, not later
        return client
    except Exception as exc:
        _forget_embedded_system(path)
        raise IndexStoreError(
            f"store {path} is unreadable or corrupted ({type(exc).__name__}: {str(exc)[:200]}); "
            "it was left as it is: rebuild it with --rebuild"
        ) from exc


def _open_http_client(url: str, timeout: float):
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise IndexStoreError(f"--chroma-url {url!r} is not an http(s)://host:port address")
    port = parsed.port or (443 if parsed.scheme == "https" else 8000)
    import httpx

    try:
        response = httpx.get(f"{parsed.scheme}://{parsed.hostname}:{port}/api/v2/heartbeat", timeout=timeout)
        response.raise_for_status()
    except httpx.TimeoutException:
        raise NetworkError(f"Chroma server at {url} did not answer within {timeout:g} s; check that it is running "
                           "and not overloaded") from None  # fmt: skip
    except httpx.HTTPError as exc:
        raise NetworkError(
            f"Chroma server at {url} is not reachable ({type(exc).__name__}: {exc}); "
            "start it with `chroma run --path DIR --port PORT` or fix --chroma-url"
        ) from None
    import chromadb

    try:
        client = chromadb.HttpClient(host=parsed.hostname, port=port, ssl=parsed.scheme == "https",
                                     settings=_settings())  # fmt: skip
    except Exception as exc:
        raise NetworkError(f"Chroma server at {url} refused the client ({exc}); is it a Chroma >= 1.0 server?") from exc
    session = getattr(getattr(client, "_server", None), "_session", None)
    if session is not None:  # chromadb's httpx client waits forever by default
        session.timeout = httpx.Timeout(timeout)
    else:  # pragma: no cover - chromadb internals moved
        log.warning("could not set a timeout on the Chroma HTTP client; a stalled server may hang requests")
    return client


class ChromaIndex:
    """A Chroma collection behind the ``VectorIndex`` interface. Build with ``open_chroma_index``."""

    def __init__(self, client: Any, collection: Any, spec: StoreSpec, location: str, folder: Path | None) -> None:
        self._client = client
        self._collection = collection
        self.spec = spec
        self.location = location
        self.folder = folder  # None for a server
        self._generation = _GENERATION.get(str(folder), 0) if folder is not None else 0

    def _reconnect_if_stale(self, writing: bool = False) -> None:
        """Reconnect when another process has written the store since this client loaded it (module docstring)."""
        if self.folder is None or self._generation == (generation := _catch_up(self.folder, writing)):
            return
        name = self._collection.name
        self._client = _open_embedded_client(self.folder)
        try:
            self._collection = self._client.get_collection(name, embedding_function=None)
        except Exception as exc:
            raise IndexStoreError(f"store {self.location} lost its collection {name!r} while another process "
                                  f"wrote it ({type(exc).__name__}); build it again with `llmrec index`") from exc
        check_spec(StoreSpec.from_metadata(self._collection.metadata), self.spec, self.location)
        self._generation = generation

    # -- writing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, wait: float | None = None, on_wait: OnWait | None = None) -> Iterator[WriterLock | None]:
        """One writer at a time on an embedded store, waiting for another writer first (``wait`` s at most, None:
        as long as it takes; ``on_wait`` hears about the wait); a server serialises writes itself."""
        if self.folder is None:
            yield None
            return
        with exclusive_lock(self.folder / LOCK_NAME, str(self.folder), wait, on_wait) as lock:
            self._reconnect_if_stale(writing=True)
            yield lock

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[str],
               metadata: Sequence[Metadata]) -> None:  # fmt: skip
        vectors = validate_upsert(self, ids, vectors, documents, metadata)
        step = min(_PAGE, self._max_batch())
        for s in range(0, len(ids), step):
            batch = list(ids[s : s + step])
            with self._guard("upsert"):
                # Chroma's upsert merges metadata into the old record; replace it whole instead, so that
                # a genre an item lost does not linger in the filters.
                existing = self._collection.get(ids=batch, include=[])["ids"]
                if existing:
                    self._collection.delete(ids=existing)
                self._collection.add(
                    ids=batch,
                    embeddings=vectors[s : s + step],
                    documents=list(documents[s : s + step]),
                    metadatas=[dict(m) or None for m in metadata[s : s + step]],
                )

    def delete(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        for s in range(0, len(ids), _PAGE):
            with self._guard("delete"):
                self._collection.delete(ids=ids[s : s + _PAGE])

    def clear(self) -> None:
        with self._guard("clear"):
            name, metadata = self._collection.name, self._collection.metadata
            self._client.delete_collection(name)
            self._collection = _create(self._client, name, metadata)

    # -- reading ---------------------------------------------------------------------------
    def query(self, vector: np.ndarray, k: int, where: Filter | None = None,
              exclude: Sequence[str] | frozenset[str] = ()) -> list[Hit]:  # fmt: skip
        if k <= 0:
            return []
        excluded = frozenset(exclude)
        n = k + len(excluded)  # over-fetch so that k remain after dropping excluded items (Chroma caps n at count)
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        with self._guard("query"):
            result = self._collection.query(query_embeddings=query, n_results=n, where=chroma_where(where),
                                            include=["distances"])  # fmt: skip
        hits = [Hit(i, 1.0 - float(d)) for i, d in zip(result["ids"][0], result["distances"][0]) if i not in excluded]
        hits.sort(key=lambda h: -h.score)
        return hits[:k]

    def count(self) -> int:
        with self._guard("count"):
            return int(self._collection.count())

    def ids(self) -> list[str]:
        out: list[str] = []
        while True:
            with self._guard("list ids"):
                page = self._collection.get(include=[], limit=_PAGE, offset=len(out))["ids"]
            out.extend(page)
            if len(page) < _PAGE:
                return out

    def get_metadata(self, ids: Sequence[str]) -> dict[str, dict[str, Scalar]]:
        out: dict[str, dict[str, Scalar]] = {}
        for batch in _pages(ids):
            with self._guard("get metadata"):
                got = self._collection.get(ids=batch, include=["metadatas"])
            out.update({i: dict(m or {}) for i, m in zip(got["ids"], got["metadatas"])})
        return out

    def get_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for batch in _pages(ids):
            with self._guard("get vectors"):
                got = self._collection.get(ids=batch, include=["embeddings"])
            out.update({i: np.asarray(v, dtype=np.float32) for i, v in zip(got["ids"], got["embeddings"])})
        return out

    def get_documents(self, ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for batch in _pages(ids):
            with self._guard("get documents"):
                got = self._collection.get(ids=batch, include=["documents"])
            out.update({i: d or "" for i, d in zip(got["ids"], got["documents"])})
        return out

    # -- helpers ---------------------------------------------------------------------------
    def _max_batch(self) -> int:
        try:
            return int(self._client.get_max_batch_size())
        except Exception:  # pragma: no cover - older servers
            return _PAGE

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Chroma and transport errors become IndexStoreError / NetworkError naming the store."""
        import httpx
        from chromadb.errors import ChromaError

        try:
            self._reconnect_if_stale()
            yield
        except httpx.TimeoutException:
            raise NetworkError(f"Chroma server {self.location}: {what} timed out; check the server's health") from None
        except httpx.HTTPError as exc:
            raise NetworkError(f"Chroma server {self.location}: {what} failed ({type(exc).__name__}: {exc})") from None
        except (ChromaError, RuntimeError, OSError) as exc:
            fix = "rebuild it with --rebuild" if self.folder is not None else "check the server's logs"
            raise IndexStoreError(f"store {self.location}: {what} failed ({type(exc).__name__}: {exc}); {fix}") from exc


def chroma_where(where: Filter | None) -> dict[str, Any] | None:
    """Translate a ``Filter`` into Chroma's ``where`` language (None when there is nothing to filter)."""
    if where is None or where.empty:
        return None
    clauses: list[dict[str, Any]] = []
    if where.genres:
        ors = [{genre_key(g): True} for g in where.genres]
        clauses.append(ors[0] if len(ors) == 1 else {"$or": ors})
    clauses += [{genre_key(g): {"$ne": True}} for g in where.exclude_genres]
    if where.year_min is not None:
        clauses.append({"year": {"$gte": int(where.year_min)}})
    if where.year_max is not None:
        clauses.append({"year": {"$lte": int(where.year_max)}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _pages(ids: Sequence[str]) -> Iterator[list[str]]:
    ids = list(ids)
    for s in range(0, len(ids), _PAGE):
        yield ids[s : s + _PAGE]


def _create(client: Any, name: str, metadata: dict[str, Any]) -> Any:
    return client.create_collection(name, configuration={"hnsw": {"space": "cosine"}}, metadata=metadata,
                                    embedding_function=None)  # fmt: skip


def collection_name(text: str) -> str:
    """A valid Chroma collection name (3-512 of [a-zA-Z0-9._-], alphanumeric at both ends)."""
    import re

    name = re.sub(r"[^a-zA-Z0-9._-]+", "-", text).strip("-._")[:500]
    return name if len(name) >= 3 else f"llmrec-{name or 'items'}"


def _safe_to_wipe(folder: Path) -> bool:
    return folder.is_dir() and all(_is_store_file(p) for p in folder.iterdir())


def open_chroma_index(spec: StoreSpec, path: str | Path | None = None, url: str | None = None,
                      collection: str = DEFAULT_COLLECTION, create: bool = True, rebuild: bool = False,
                      timeout: float = DEFAULT_TIMEOUT, wait: float | None = None,
                      on_wait: OnWait | None = None) -> ChromaIndex:  # fmt: skip
    """Open (or create) the collection in a store folder or on a server; refuse one made with another spec.

    ``rebuild`` drops the collection (or, for a corrupted folder that holds only Chroma files, the
    folder) and starts empty. Without it nothing is ever deleted. A store folder that another process is
    writing is opened once that process has finished: ``wait`` seconds at most (None: as long as it takes;
    then ``StoreBusyError``), telling ``on_wait`` about the wait about twice a second. A new store is created
    under the writer lock, so no other process ever sees it half-made.
    """
    if (path is None) == (url is None):
        raise IndexStoreError("give exactly one of a store folder (--store) or a Chroma server (--chroma-url)")
    name = collection_name(collection)
    if url is not None:
        client = _open_http_client(url, timeout)
        return _attach(client, name, spec, f"{url.rstrip('/')}/{name}", None, create, rebuild)
    folder = Path(path).expanduser().resolve()  # type: ignore[arg-type]
    if folder.exists() and not folder.is_dir():
        raise IndexStoreError(f"store {folder} is a file, not a folder; choose another --store")
    lock = folder / LOCK_NAME
    if folder.is_dir():
        wait_for_writer(lock, str(folder), wait, on_wait)
    has_store = (folder / "chroma.sqlite3").is_file()
    if folder.is_dir() and not has_store and any(p.name != LOCK_NAME for p in folder.iterdir()):
        raise IndexStoreError(f"folder {folder} is not empty and holds no Chroma store; choose another --store")
    if not create and not has_store:
        raise IndexStoreError(f"no vector store at {folder}; build it with `llmrec index`")
    problem = _sqlite_problem(folder)
    if problem and holder(lock) is not None:  # another process is making it right now: wait, then look again
        wait_for_writer(lock, str(folder), wait, on_wait)
        problem, has_store = _sqlite_problem(folder), (folder / "chroma.sqlite3").is_file()
    if problem and not rebuild:
        raise IndexStoreError(f"store {folder} is corrupted: {problem}; it was left as it is: "
                              "rebuild it with --rebuild")  # fmt: skip
    if has_store and not rebuild:
        _catch_up(folder)
        return _attach(_open_embedded_client(folder), name, spec, str(folder), folder, create, rebuild)
    with exclusive_lock(lock, str(folder), wait, on_wait):  # creating or rebuilding: nobody sees it half-made
        if _sqlite_problem(folder):
            if not _safe_to_wipe(folder):
                raise IndexStoreError(f"store {folder} is corrupted and holds files that are not Chroma's; "
                                      "move them away, then rebuild it with --rebuild")  # fmt: skip
            _wipe(folder)
        if not (folder / "chroma.sqlite3").is_file():
            _forget_embedded_system(folder)  # a store deleted and made again in this process: drop the stale handle
        _catch_up(folder, writing=True)
        try:
            client = _open_embedded_client(folder)
        except IndexStoreError:
            if not (rebuild and _safe_to_wipe(folder)):
                raise
            _wipe(folder)
            client = _open_embedded_client(folder)
        return _attach(client, name, spec, str(folder), folder, create, rebuild)


def _attach(client: Any, name: str, spec: StoreSpec, location: str, folder: Path | None, create: bool,
            rebuild: bool) -> ChromaIndex:  # fmt: skip
    from chromadb.errors import ChromaError, NotFoundError

    try:
        existing = {c.name if hasattr(c, "name") else str(c) for c in client.list_collections()}
        if name in existing and rebuild:
            log.info("dropping collection %s in %s (--rebuild)", name, location)
            client.delete_collection(name)
            existing.discard(name)
        if name in existing:
            col = client.get_collection(name, embedding_function=None)
            check_spec(StoreSpec.from_metadata(col.metadata), spec, location)
            space = ((col.configuration or {}).get("hnsw") or {}).get("space")
            if space not in (None, spec.distance):
                raise IndexStoreError(
                    f"store {location} uses {space} distance, not {spec.distance}; rebuild it with --rebuild"
                )
        elif create:
            col = _create(client, name, spec.as_metadata())
        else:
            raise IndexStoreError(f"no collection {name!r} in store {location}; build it with `llmrec index`")
    except NotFoundError as exc:
        raise IndexStoreError(f"no collection {name!r} in store {location}; build it with `llmrec index`") from exc
    except ChromaError as exc:
        raise IndexStoreError(f"store {location} could not be opened ({exc}); rebuild it with --rebuild") from exc
    return ChromaIndex(client, col, spec, location, folder)
