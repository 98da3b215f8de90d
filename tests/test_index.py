"""VectorIndex contract (exact numpy and embedded Chroma), Chroma store safety, and client-mode failures."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from llmrec.errors import IndexStoreError, NetworkError
from llmrec.index import Filter, Hit, MemoryIndex, StoreSpec, VectorIndex, genre_key, open_chroma_index
from llmrec.index.base import exclusive_lock
from llmrec.index.chroma import LOCK_NAME, chroma_where, collection_name
from llmrec.index.lock import StoreBusy, StoreBusyError, read_state

DIM = 8
SPEC = StoreSpec("test-embedder", DIM, "item_text@1")


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    vectors = unit(rng.normal(size=(40, DIM)))
    ids = [f"i{n}" for n in range(40)]
    genres = ["Comedy", "Horror", "Sci-Fi", "Drama"]
    metadata = []
    for n in range(40):
        meta = {"hash": f"h{n}", "year": 1980 + n}
        meta[genre_key(genres[n % 4])] = True
        if n % 5 == 0:
            meta[genre_key("Sci-Fi")] = True
        metadata.append(meta)
    return ids, vectors, [f"doc {n}" for n in range(40)], metadata


@pytest.fixture(params=["memory", "chroma"])
def index(request, tmp_path, data) -> VectorIndex:
    idx = MemoryIndex(SPEC) if request.param == "memory" else open_chroma_index(SPEC, path=tmp_path / "store")
    ids, vectors, docs, meta = data
    with idx.writing():
        idx.upsert(ids, vectors, docs, meta)
    return idx


def exact(data, query: np.ndarray, keep) -> list[str]:
    ids, vectors, _, meta = data
    scores = vectors @ query
    order = sorted((i for i in range(len(ids)) if keep(ids[i], meta[i])), key=lambda i: -scores[i])
    return [ids[i] for i in order]


def test_query_returns_cosine_similarity_in_exact_order(index, data):
    ids, vectors, _, _ = data
    hits = index.query(vectors[3], 10)
    assert all(isinstance(h, Hit) for h in hits)
    assert [h.item_id for h in hits] == exact(data, vectors[3], lambda i, m: True)[:10]
    assert hits[0].item_id == "i3" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    for hit in hits:
        assert hit.score == pytest.approx(float(vectors[ids.index(hit.item_id)] @ vectors[3]), abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_exclude_over_fetches_to_still_return_k(index, data):
    _, vectors, _, _ = data
    banned = set(exact(data, vectors[0], lambda i, m: True)[:15])
    hits = index.query(vectors[0], 10, exclude=banned)
    assert len(hits) == 10 and not banned & {h.item_id for h in hits}
    assert [h.item_id for h in hits] == exact(data, vectors[0], lambda i, m: i not in banned)[:10]


@pytest.mark.parametrize(
    "where",
    [
        Filter(genres=("Sci-Fi",)),
        Filter(genres=("Comedy", "Horror")),
        Filter(exclude_genres=("Sci-Fi",)),
        Filter(year_min=1990, year_max=2000),
        Filter(genres=("Drama",), year_min=2000),
    ],
)
def test_metadata_filters_match_between_indexes(index, data, where):
    _, vectors, _, _ = data
    hits = index.query(vectors[5], 40, where=where)
    assert [h.item_id for h in hits] == exact(data, vectors[5], lambda i, m: where.matches(m))
    assert hits, "each filter keeps something"


def test_delete_count_ids_metadata_vectors(index, data):
    ids, vectors, _, _ = data
    assert index.count() == 40 and sorted(index.ids()) == sorted(ids)
    with index.writing():
        index.delete(["i1", "i2", "missing"])
    assert index.count() == 38 and "i1" not in index.ids()
    meta = index.get_metadata(["i0", "i1", "nope"])
    assert set(meta) == {"i0"} and meta["i0"]["hash"] == "h0" and meta["i0"]["year"] == 1980
    got = index.get_vectors(["i3", "i1"])
    assert set(got) == {"i3"}
    np.testing.assert_allclose(got["i3"], vectors[3], atol=1e-6)
    assert all(h.item_id not in ("i1", "i2") for h in index.query(vectors[1], 40))


def test_upsert_overwrites_and_clear_empties(index, data):
    _, vectors, _, _ = data
    with index.writing():
        index.upsert(["i0"], vectors[1:2], ["new"], [{"hash": "changed"}])
    assert index.count() == 40
    assert index.get_metadata(["i0"])["i0"] == {"hash": "changed"}
    np.testing.assert_allclose(index.get_vectors(["i0"])["i0"], vectors[1], atol=1e-6)
    with index.writing():
        index.clear()
    assert index.count() == 0 and index.query(vectors[0], 5) == []


def test_k_edge_cases(index, data):
    _, vectors, _, _ = data
    assert index.query(vectors[0], 0) == []
    assert len(index.query(vectors[0], 500)) == 40


@pytest.mark.parametrize(
    "ids, vectors, message",
    [
        (["a"], np.ones((1, DIM + 1)), "dimension"),
        (["a", "a"], np.ones((2, DIM)), "unique"),
        (["a"], np.full((1, DIM), np.nan), "NaN"),
        (["a", "b"], np.ones((1, DIM)), "must agree"),
    ],
)
def test_bad_upserts_are_refused(index, ids, vectors, message):
    with pytest.raises(IndexStoreError, match=message):
        index.upsert(ids, vectors, ["d"] * len(ids), [{}] * len(ids))


def test_filter_and_where_translation():
    assert genre_key("Sci-Fi") == "genre_sci_fi" and genre_key("(no genres listed)") == "genre_no_genres_listed"
    assert chroma_where(None) is None and chroma_where(Filter()) is None
    assert chroma_where(Filter(genres=("Comedy",))) == {"genre_comedy": True}
    assert chroma_where(Filter(genres=("A", "B"), year_min=1990)) == {
        "$and": [{"$or": [{"genre_a": True}, {"genre_b": True}]}, {"year": {"$gte": 1990}}]
    }
    assert not Filter(year_min=1990).matches({})  # no year: out of any year range
    assert collection_name("a") == "llmrec-a" and collection_name("ml latest/small") == "ml-latest-small"


# -- Chroma store safety ------------------------------------------------------------------------
def test_store_persists_and_refuses_another_spec(tmp_path, data):
    ids, vectors, docs, meta = data
    folder = tmp_path / "store"
    with (idx := open_chroma_index(SPEC, path=folder)).writing():
        idx.upsert(ids[:5], vectors[:5], docs[:5], meta[:5])
    assert open_chroma_index(SPEC, path=folder, create=False).count() == 5
    other = StoreSpec("other-embedder", DIM, "item_text@1")
    with pytest.raises(IndexStoreError, match=rf"{folder}.*other-embedder.*--rebuild"):
        open_chroma_index(other, path=folder)
    with pytest.raises(IndexStoreError, match="item_text@2"):
        open_chroma_index(StoreSpec("test-embedder", DIM, "item_text@2"), path=folder)
    rebuilt = open_chroma_index(other, path=folder, rebuild=True)
    assert rebuilt.count() == 0 and open_chroma_index(other, path=folder).count() == 0


def test_corrupted_store_is_reported_and_left_alone(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    for _ in range(2):  # the second open must fail the same clear way, not with a cached broken client
        with pytest.raises(IndexStoreError, match=rf"{folder}.*corrupted.*--rebuild"):
            open_chroma_index(SPEC, path=folder)
    assert (folder / "chroma.sqlite3").read_bytes().startswith(b"this is not")
    fresh = open_chroma_index(SPEC, path=folder, rebuild=True)
    assert fresh.count() == 0


def test_folders_that_are_not_stores_are_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(IndexStoreError, match="holds no Chroma store"):
        open_chroma_index(SPEC, path=tmp_path)
    with pytest.raises(IndexStoreError, match="holds no Chroma store"):
        open_chroma_index(SPEC, path=tmp_path, rebuild=True)
    assert (tmp_path / "notes.txt").exists()
    with pytest.raises(IndexStoreError, match="is a file"):
        open_chroma_index(SPEC, path=tmp_path / "notes.txt")
    with pytest.raises(IndexStoreError, match="llmrec index"):
        open_chroma_index(SPEC, path=tmp_path / "absent", create=False)
    with pytest.raises(IndexStoreError, match="exactly one"):
        open_chroma_index(SPEC)


def test_a_store_deleted_and_made_again_in_one_process_works(tmp_path, data):
    import shutil

    ids, vectors, docs, meta = data
    folder = tmp_path / "again"
    for _ in range(2):
        with (idx := open_chroma_index(SPEC, path=folder)).writing():
            idx.upsert(ids[:3], vectors[:3], docs[:3], meta[:3])
        assert idx.count() == 3
        shutil.rmtree(folder)


def test_a_nested_writer_in_one_thread_is_refused_with_the_holder_pid(tmp_path):
    idx = open_chroma_index(SPEC, path=tmp_path / "locked")
    with idx.writing():
        pid = os.getpid()
        with pytest.raises(IndexStoreError, match=rf"being written by another process \(pid {pid}, writing for"), \
                idx.writing():  # fmt: skip
            pass
        with pytest.raises(IndexStoreError, match="being written"):
            open_chroma_index(SPEC, path=tmp_path / "locked", rebuild=True)
        assert idx.count() == 0  # readers take no lock
    with idx.writing():  # released
        pass


def _hold_lock(lock: Path, seconds: float):
    """A process holding ``lock`` the way a writer does (bare pid, the old format) for ``seconds``."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl,os,sys,time; fd=os.open(sys.argv[1], os.O_RDWR|os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode()); print('held', flush=True); "
         "time.sleep(float(sys.argv[2]))", str(lock), str(seconds)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_lock_is_held_across_processes_and_dies_with_its_holder(tmp_path):
    lock = tmp_path / LOCK_NAME
    holder = _hold_lock(lock, 30)
    try:
        with pytest.raises(StoreBusyError, match=rf"pid {holder.pid}.*wait for it") as caught, exclusive_lock(
            lock, "X", wait=0
        ):
            pass
        assert caught.value.busy.pid == holder.pid and isinstance(caught.value, IndexStoreError)
    finally:
        holder.kill()
        holder.wait()
    with exclusive_lock(lock, "X", wait=0):  # the lock dies with its holder
        pass


def test_a_second_writer_waits_for_the_first_and_hears_about_it(tmp_path):
    lock = tmp_path / LOCK_NAME
    holder = _hold_lock(lock, 1.5)
    heard: list[StoreBusy] = []
    started = time.monotonic()
    try:
        with exclusive_lock(lock, "X", on_wait=heard.append, poll=0.1) as writer:
            waited = time.monotonic() - started
            writer.progress(3, 10)
            assert read_state(lock).pid == os.getpid() and read_state(lock).done == 3
    finally:
        holder.kill()
        holder.wait()
    assert 0.5 < waited < 20
    assert heard and all(b.pid == holder.pid for b in heard) and heard[-1].waited_s >= heard[0].waited_s
    assert "being written by another process" in heard[0].message()
    # nested in one thread: refused at once, never a wait on itself
    with exclusive_lock(lock, "X"), pytest.raises(StoreBusyError, match="this thread already holds"), exclusive_lock(
        lock, "X"
    ):
        pass


def test_zero_byte_sqlite_is_reported_not_silently_rebuilt(tmp_path, data):
    """Issue 17: Chroma would make a fresh database in the empty file and orphan the old segment folder."""
    ids, vectors, docs, meta = data
    folder = tmp_path / "store"
    with (idx := open_chroma_index(SPEC, path=folder)).writing():
        idx.upsert(ids, vectors, docs, meta)
    segments = [p.name for p in folder.iterdir() if p.is_dir()]
    assert segments
    (folder / "chroma.sqlite3").write_bytes(b"")
    for _ in range(2):
        with pytest.raises(IndexStoreError, match=rf"store {folder} is corrupted: its chroma.sqlite3 is empty "
                                                  r"\(0 bytes\); it was left as it is: rebuild it with --rebuild"):
            open_chroma_index(SPEC, path=folder)
    assert (folder / "chroma.sqlite3").stat().st_size == 0
    assert [p.name for p in folder.iterdir() if p.is_dir()] == segments  # left alone
    rebuilt = open_chroma_index(SPEC, path=folder, rebuild=True)
    assert rebuilt.count() == 0 and not (set(segments) & {p.name for p in folder.iterdir()})  # nothing orphaned


# -- client mode failures -----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_chroma_server_down_is_a_clear_network_error():
    url = f"http://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    with pytest.raises(NetworkError, match=rf"{url}.*not reachable"):
        open_chroma_index(SPEC, url=url, timeout=2.0)
    assert time.monotonic() - started < 5


def test_silent_chroma_server_times_out():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_say_nothing() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_say_nothing, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    try:
        started = time.monotonic()
        with pytest.raises(NetworkError, match=r"did not answer within 1 s"):
            open_chroma_index(SPEC, url=url, timeout=1.0)
        assert time.monotonic() - started < 4
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


def test_bad_chroma_url_is_refused():
    with pytest.raises(IndexStoreError, match="not an http"):
        open_chroma_index(SPEC, url="localhost:8000")


def test_index_modules_do_not_import_chromadb_until_used():
    import subprocess
    import sys

    code = ("import sys, llmrec.index, llmrec.indexing, llmrec.pipeline.stores, llmrec.index.precomputed; "
            "print('chromadb' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd())
    assert out.stdout.split() == ["False", "False"]


def test_a_leftover_lock_file_alone_does_not_block_a_new_store(tmp_path):
    folder = tmp_path / "store"
    folder.mkdir()
    (folder / LOCK_NAME).write_text("")
    assert open_chroma_index(SPEC, path=folder).count() == 0


_WRITER = """
import sys, numpy as np
from llmrec.index import StoreSpec, open_chroma_index
spec = StoreSpec("test-embedder", 8, "item_text@1")
idx = open_chroma_index(spec, path=sys.argv[1])
start, stop = int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(start)
vectors = rng.normal(size=(stop - start, 8)).astype(np.float32)
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
with idx.writing():
    idx.upsert([f"p{n}" for n in range(start, stop)], vectors, [""] * (stop - start), [{"hash": "h"}] * (stop - start))
"""


def _write_in_another_process(folder: Path, start: int, stop: int) -> None:
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", _WRITER, str(folder), str(start), str(stop)], check=True, timeout=120)


def test_a_reader_sees_what_another_process_wrote_since_it_opened(tmp_path):
    """Chroma's embedded client caches the vector segment per process: without reconnecting, ids written by
    another process fail with "Error finding id" (reported as a corrupted store)."""
    folder = tmp_path / "store"
    _write_in_another_process(folder, 0, 30)
    reader = open_chroma_index(SPEC, path=folder)
    first = reader.get_vectors(["p7"])["p7"]
    assert reader.query(first, 1)[0].item_id == "p7"
    _write_in_another_process(folder, 30, 60)
    assert reader.count() == 60
    late = reader.get_vectors(["p45"])["p45"]
    assert reader.query(late, 1) == [Hit("p45", pytest.approx(1.0, abs=1e-5))]
    assert reader.query(first, 1)[0].item_id == "p7"


def test_an_opener_waits_for_the_process_that_writes_the_store(tmp_path):
    folder = tmp_path / "store"
    folder.mkdir()
    holder = _hold_lock(folder / LOCK_NAME, 1.0)
    heard: list[StoreBusy] = []
    try:
        with pytest.raises(StoreBusyError, match=rf"{folder}.*pid {holder.pid}"):
            open_chroma_index(SPEC, path=folder, wait=0)
        index = open_chroma_index(SPEC, path=folder, on_wait=heard.append)
    finally:
        holder.kill()
        holder.wait()
    assert heard and heard[0].store == str(folder) and index.count() == 0
