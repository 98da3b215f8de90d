"""Build and refresh a vector store from a catalogue, embedding only what changed.

Every stored item carries ``hash`` = sha256(item text + template ref + embedder name). A re-run
embeds new and changed items, deletes items that left the catalogue, and skips the rest. Upserts
go in batches, so a run that is killed half-way resumes where it stopped. Writes happen under the
index's writer lock (one writer per embedded store; readers take no lock).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llmrec.embedding import Embedder
from llmrec.errors import DataError
from llmrec.index.base import Scalar, StoreSpec, VectorIndex, genre_key
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
) -> IndexReport:
    """Bring ``index`` in line with the catalogue; see the module docstring."""
    items: Mapping[str, Item] = dataset if isinstance(dataset, Mapping) else dataset.items
    name = "catalogue" if isinstance(dataset, Mapping) else dataset.name
    if not items:
        raise DataError(f"data set {name!r} has an empty catalogue: nothing to index; check its item file")
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}")
    from llmrec.data.item_text import item_text

    started = time.perf_counter()
    template = load_prompt("item_text")
    with index.writing():
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
        todo = [i for i in items if stored.get(i, {}).get("hash") != hashes[i]]
        log.info("%s: %d items to embed, %d unchanged", index.location, len(todo), len(items) - len(todo))
        with progress_bar(f"indexing {name}", total=len(todo), unit="item") as bar:
            for s in range(0, len(todo), batch_size):
                batch = todo[s : s + batch_size]
                vectors = embedder.embed([texts[i] for i in batch])
                index.upsert(batch, vectors, [texts[i] for i in batch],
                             [item_metadata(items[i], hashes[i]) for i in batch])  # fmt: skip
                bar.update(len(batch))
        total = index.count()
    return IndexReport(embedded=len(todo), unchanged=len(items) - len(todo), deleted=len(removed), total=total,
                       seconds=time.perf_counter() - started, location=index.location)  # fmt: skip


def open_store(
    dataset: str,
    embedder: Embedder,
    cache_dir: str | Path | None = None,
    store: str | Path | None = None,
    chroma_url: str | None = None,
    rebuild: bool = False,
    create: bool = True,
    timeout: float = 10.0,
) -> VectorIndex:
    """The Chroma store for ``dataset`` and ``embedder``: ``store`` folder, a server, or the default folder."""
    from llmrec.errors import ConfigError
    from llmrec.index.chroma import open_chroma_index

    if store is not None and chroma_url is not None:
        raise ConfigError("pass either --store DIR or --chroma-url URL, not both")
    spec = store_spec(embedder)
    if chroma_url is not None:
        name = f"llmrec-{_slug(Path(dataset).name)}-{_slug(embedder.name)}"
        return open_chroma_index(spec, url=chroma_url, collection=name, create=create, rebuild=rebuild, timeout=timeout)
    path = Path(store) if store is not None else default_store_path(cache_dir, dataset, embedder.name)
    return open_chroma_index(spec, path=path, create=create, rebuild=rebuild)
