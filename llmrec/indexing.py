"""Build and refresh a vector store from a catalogue, embedding only what changed.

Every stored item carries ``hash`` = sha256(item text + template ref + embedder name). A re-run
embeds new and changed items, deletes items that left the catalogue, and skips the rest. Vectors made
ahead of time for the same hash (``llmrec.index.precomputed``: the package ships them for the default
data set) are copied instead of computed. Texts are embedded shortest first, so a batch holds texts of
similar length (less padding). Upserts go in batches, so a run that is killed half-way resumes where it
stopped. Writes happen under the index's writer lock (one writer per embedded store; a second one waits
for the first and can be told about the wait; readers take no lock).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from llmrec.embedding import Embedder
from llmrec.errors import DataError
from llmrec.index.base import Scalar, StoreSpec, VectorIndex, genre_key
from llmrec.index.lock import OnWait
from llmrec.index.precomputed import VectorSource
from llmrec.paths import resolve_cache_dir
from llmrec.progress import progress_bar
from llmrec.prompts import load_prompt
from llmrec.types import Item

if TYPE_CHECKING:
    from llmrec.data.dataset import Dataset

log = logging.getLogger(__name__)

DEFAULT_BATCH = 256


@dataclass(frozen=True)
class IndexReport:
    """What a build did: items embedded, left unchanged, deleted; items in the store afterwards."""

    embedded: int
    unchanged: int
    deleted: int
    total: int
    seconds: float = 0.0
    location: str = ""
    precomputed: int = 0  # of ``embedded``, items whose vectors were copied from precomputed vectors


def template_ref() -> str:
    return load_prompt("item_text").ref


def store_spec(embedder: Embedder) -> StoreSpec:
    """The spec a store built with ``embedder`` and the current item-text template carries."""
    return StoreSpec(embedder=embedder.name, dim=embedder.dim, template=template_ref())


def content_hash(text: str, template: str, embedder_name: str) -> str:
    return hashlib.sha256("\x1f".join((text, template, embedder_name)).encode("utf-8", "surrogatepass")).hexdigest()


def item_metadata(item: Item, digest: str) -> dict[str, Scalar]:
    """Flat, filterable metadata: title, year, one boolean key per genre, content hash."""
    title = item.title[:500].encode("utf-8", errors="replace").decode("utf-8")  # Chroma wants valid UTF-8
    meta: dict[str, Scalar] = {"hash": digest, "title": title}
    if item.year is not None:
        meta["year"] = int(item.year)
    for genre in item.genres:
        key = genre_key(genre)
        if key != "genre_" and key != "genre_no_genres_listed":
            meta[key] = True
    return meta


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._") or "dataset"


def default_store_path(cache_dir: str | Path | None, dataset: str, embedder: str) -> Path:
    """``<cache>/stores/<dataset>-<embedder>``."""
    return resolve_cache_dir(cache_dir) / "stores" / f"{_slug(Path(dataset).name)}-{_slug(embedder)}"


def build_index(
    dataset: Dataset | Mapping[str, Item],
    embedder: Embedder,
    index: VectorIndex,
    batch_size: int = DEFAULT_BATCH,
    rebuild: bool = False,
    precomputed: VectorSource | None = None,
    wait: float | None = None,
    on_wait: OnWait | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> IndexReport:
    """Bring ``index`` in line with the catalogue; see the module docstring. ``wait``/``on_wait``: how long to
    wait for another writer (None: as long as it takes) and whom to tell about it; ``on_progress(done, total)``
    hears about every batch written."""
    items: Mapping[str, Item] = dataset if isinstance(dataset, Mapping) else dataset.items
    name = "catalogue" if isinstance(dataset, Mapping) else dataset.name
    if not items:
        raise DataError(f"data set {name!r} has an empty catalogue: nothing to index; check its item file")
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}")
    from llmrec.data.item_text import item_text

    started = time.perf_counter()
    template = load_prompt("item_text")
    with index.writing(wait=wait, on_wait=on_wait) as lock:
        if rebuild:
            index.clear()
        texts = {item_id: item_text(item, template) for item_id, item in items.items()}
        hashes = {item_id: content_hash(text, template.ref, embedder.name) for item_id, text in texts.items()}
        stored_ids = index.ids()
        stored = index.get_metadata(stored_ids)
        removed = [i for i in stored_ids if i not in items]
        if removed:
            log.info("deleting %d items that left the catalogue from %s", len(removed), index.location)
            index.delete(removed)
        todo = sorted((i for i in items if stored.get(i, {}).get("hash") != hashes[i]), key=lambda i: len(texts[i]))
        known = precomputed.lookup([hashes[i] for i in todo]) if precomputed is not None and todo else {}
        copied = [i for i in todo if hashes[i] in known]
        log.info("%s: %d items to embed, %d from precomputed vectors, %d unchanged", index.location,
                 len(todo) - len(copied), len(copied), len(items) - len(todo))  # fmt: skip
        done = 0
        with progress_bar(f"indexing {name}", total=len(todo), unit="item") as bar:
            for part, compute in ((copied, False), ([i for i in todo if hashes[i] not in known], True)):
                for s in range(0, len(part), batch_size):
                    batch = part[s : s + batch_size]
                    docs = [texts[i] for i in batch]
                    vectors = embedder.embed(docs) if compute else np.stack([known[hashes[i]] for i in batch])
                    index.upsert(batch, vectors, docs, [item_metadata(items[i], hashes[i]) for i in batch])
                    done += len(batch)
                    bar.update(len(batch))
                    if lock is not None:
                        lock.progress(done, len(todo))
                    if on_progress is not None:
                        on_progress(done, len(todo))
        total = index.count()
    return IndexReport(embedded=len(todo), unchanged=len(items) - len(todo), deleted=len(removed), total=total,
                       seconds=time.perf_counter() - started, location=index.location,
                       precomputed=len(copied))  # fmt: skip


def store_folder(dataset: str, embedder_name: str, cache_dir: str | Path | None = None,
                 store: str | Path | None = None) -> Path:  # fmt: skip
    """The folder of the embedded store ``open_store`` opens for these arguments (without a server)."""
    return Path(store) if store is not None else default_store_path(cache_dir, dataset, embedder_name)


def open_store(
    dataset: str,
    embedder: Embedder,
    cache_dir: str | Path | None = None,
    store: str | Path | None = None,
    chroma_url: str | None = None,
    rebuild: bool = False,
    create: bool = True,
    timeout: float = 10.0,
    wait: float | None = None,
    on_wait: OnWait | None = None,
) -> VectorIndex:
    """The Chroma store for ``dataset`` and ``embedder``: ``store`` folder, a server, or the default folder.
    A folder another process is writing is opened once it has finished (``wait``/``on_wait``: see
    ``open_chroma_index``)."""
    from llmrec.errors import ConfigError
    from llmrec.index.chroma import open_chroma_index

    if store is not None and chroma_url is not None:
        raise ConfigError("pass either --store DIR or --chroma-url URL, not both")
    spec = store_spec(embedder)
    if chroma_url is not None:
        name = f"llmrec-{_slug(Path(dataset).name)}-{_slug(embedder.name)}"
        return open_chroma_index(spec, url=chroma_url, collection=name, create=create, rebuild=rebuild, timeout=timeout)
    path = store_folder(dataset, embedder.name, cache_dir, store)
    return open_chroma_index(spec, path=path, create=create, rebuild=rebuild, wait=wait, on_wait=on_wait)
