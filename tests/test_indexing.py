"""Building a store: incremental by content hash, resumable, one writer, awkward items, store paths."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from llmrec.data.dataset import Dataset, Interactions
from llmrec.embedding import HashingEmbedder
from llmrec.errors import ConfigError, DataError, IndexStoreError
from llmrec.index import Filter, MemoryIndex, open_chroma_index
from llmrec.index.lock import StoreBusyError
from llmrec.indexing import (
    IndexReport,
    build_index,
    content_hash,
    default_store_path,
    item_metadata,
    open_store,
    store_spec,
    template_ref,
)
from llmrec.types import Item


def catalogue(n: int = 12) -> dict[str, Item]:
    genres = [("Animation", "Children"), ("Horror",), ("Sci-Fi", "Thriller"), ("Drama",)]
    return {
        str(i): Item(str(i), f"Movie {i}", 1990 + i, genres[i % 4], keywords=(f"kw{i}",), description=f"plot {i}")
        for i in range(1, n + 1)
    }


def dataset(items: dict[str, Item]) -> Dataset:
    return Dataset("toy", items, Interactions.from_rows([]))


class CountingEmbedder(HashingEmbedder):
    """The hashing fake that counts texts and can fail on a chosen call."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        super().__init__(32, batch_size=4)
        self.calls = 0
        self.texts = 0
        self.fail_on_call = fail_on_call

    def embed(self, texts, show_progress: bool = False) -> np.ndarray:
        self.calls += 1
        if self.fail_on_call is not None and self.calls == self.fail_on_call:
            raise KeyboardInterrupt("killed")
        self.texts += len(texts)
        return super().embed(texts, show_progress)


@pytest.fixture(params=["memory", "chroma"])
def index_for(request, tmp_path):
    def make(embedder):
        spec = store_spec(embedder)
        return MemoryIndex(spec) if request.param == "memory" else open_chroma_index(spec, path=tmp_path / "store")

    return make


def test_rebuilds_only_what_changed(index_for):
    emb = CountingEmbedder()
    index = index_for(emb)
    items = catalogue()
    first = build_index(dataset(items), emb, index, batch_size=5)
    assert isinstance(first, IndexReport)
    assert (first.embedded, first.unchanged, first.deleted, first.total) == (12, 0, 0, 12)
    again = build_index(dataset(items), emb, index)
    assert (again.embedded, again.unchanged, again.deleted, again.total) == (0, 12, 0, 12)
    items["3"] = dataclasses.replace(items["3"], description="a new plot")
    items["13"] = Item("13", "Brand New", 2020, ("Comedy",))
    del items["5"]
    changed = build_index(dataset(items), emb, index)
    assert (changed.embedded, changed.unchanged, changed.deleted, changed.total) == (2, 10, 1, 12)
    assert "5" not in index.ids()
    full = build_index(dataset(items), emb, index, rebuild=True)
    assert (full.embedded, full.total) == (12, 12)


def test_metadata_is_filterable_and_hashes_cover_template_and_embedder(index_for):
    emb = HashingEmbedder(32)
    index = index_for(emb)
    items = catalogue()
    build_index(dataset(items), emb, index)
    meta = index.get_metadata(["4"])["4"]
    assert meta["year"] == 1994 and meta["genre_animation"] is True and meta["title"] == "Movie 4"
    hits = index.query(emb.embed(["Movie 2"])[0], 20, where=Filter(genres=("Horror",), year_max=1998))
    assert {h.item_id for h in hits} == {"1", "5"}
    assert content_hash("t", template_ref(), "a") != content_hash("t", "item_text@99", "a")
    assert content_hash("t", template_ref(), "a") != content_hash("t", template_ref(), "b")
    assert "genre_no_genres_listed" not in item_metadata(Item("x", "X", None, ("(no genres listed)",)), "h")


def test_a_killed_build_resumes_where_it_stopped(tmp_path):
    items = catalogue(20)
    folder = tmp_path / "store"
    dying = CountingEmbedder(fail_on_call=3)  # two batches of 4 upserted, then "killed"
    with pytest.raises(KeyboardInterrupt):
        build_index(dataset(items), dying, open_chroma_index(store_spec(dying), path=folder), batch_size=4)
    resumed = CountingEmbedder()
    report = build_index(dataset(items), resumed, open_chroma_index(store_spec(resumed), path=folder), batch_size=4)
    assert (report.embedded, report.unchanged, report.total) == (12, 8, 20)
    assert resumed.texts == 12


def test_second_writer_waits_for_a_build_in_another_thread_or_gives_up_when_told(tmp_path):
    import threading

    emb = HashingEmbedder(32)
    index = open_chroma_index(store_spec(emb), path=tmp_path / "store")
    other = open_chroma_index(store_spec(emb), path=tmp_path / "store")
    with index.writing(), pytest.raises(StoreBusyError, match="being written by another process"):
        build_index(dataset(catalogue()), emb, other, wait=0)
    heard, progress, holding, release = [], [], threading.Event(), threading.Event()

    def first_writer() -> None:
        with index.writing() as lock:
            lock.progress(5, 12)
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=first_writer)
    thread.start()
    assert holding.wait(10)

    def on_wait(busy) -> None:
        heard.append(busy)
        release.set()

    report = build_index(dataset(catalogue()), emb, other, on_wait=on_wait,
                         on_progress=lambda done, total: progress.append((done, total)))  # fmt: skip
    thread.join()
    assert heard and (heard[0].done, heard[0].total) == (5, 12)
    assert report.embedded == 12 and progress[-1] == (12, 12)


def test_empty_catalogue_is_refused():
    emb = HashingEmbedder(32)
    with pytest.raises(DataError, match="empty catalogue"):
        build_index({}, emb, MemoryIndex(store_spec(emb)))
    with pytest.raises(DataError, match="empty catalogue"):
        dataset({})


@pytest.mark.parametrize(
    "item",
    [
        Item("e", "", None),
        Item("big", "Big", 2000, description="x" * 1_000_000),
        Item("emoji", "🎬 Film 😀", 2001, ("Comedy",), description="🍿" * 50),
        Item("rtl", "فيلم رائع", 2002, description="סרט טוב מאוד"),
        Item("bad", "Bad \ud800 surrogate", 2003, description="\udfff\x00 control"),
    ],
)
def test_awkward_items_index_and_come_back(tmp_path, item: Item):
    emb = HashingEmbedder(32)
    index = open_chroma_index(store_spec(emb), path=tmp_path / "store")
    report = build_index({item.item_id: item, **catalogue(3)}, emb, index)
    assert report.total == 4
    assert index.query(index.get_vectors([item.item_id])[item.item_id], 1)[0].item_id == item.item_id
    assert build_index({item.item_id: item, **catalogue(3)}, emb, index).embedded == 0


def test_store_paths_and_choices(tmp_path):
    path = default_store_path(tmp_path, "ml-latest-small", "all-minilm-l6-v2")
    assert path == tmp_path / "stores" / "ml-latest-small-all-minilm-l6-v2"
    assert default_store_path(tmp_path, "/data/my folder", "hashing-256").name == "my-folder-hashing-256"
    emb = HashingEmbedder(32)
    with pytest.raises(ConfigError, match="not both"):
        open_store("toy", emb, tmp_path, store=tmp_path / "s", chroma_url="http://127.0.0.1:1")
    store = open_store("toy", emb, cache_dir=tmp_path)
    assert store.location == str(tmp_path / "stores" / "toy-hashing-32")
    build_index(dataset(catalogue()), emb, store)
    with pytest.raises(IndexStoreError, match=r"toy-hashing-32.*hashing-64.*--rebuild"):
        open_store("toy", HashingEmbedder(64), store=tmp_path / "stores" / "toy-hashing-32")


def test_texts_are_embedded_shortest_first_so_batches_hold_similar_lengths():
    seen: list[list[str]] = []

    class Recording(HashingEmbedder):
        def embed(self, texts, show_progress: bool = False) -> np.ndarray:
            seen.append(list(texts))
            return super().embed(texts, show_progress)

    emb = Recording(32)
    items = {str(i): Item(str(i), "T" * (40 - 3 * i), 2000) for i in range(10)}
    build_index(items, emb, MemoryIndex(store_spec(emb)), batch_size=4)
    lengths = [len(t) for batch in seen for t in batch]
    assert lengths == sorted(lengths) and [len(b) for b in seen] == [4, 4, 2]
