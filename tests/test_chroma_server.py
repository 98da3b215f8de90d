"""ChromaIndex in client mode against a real ``chroma run`` server on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from llmrec.embedding import HashingEmbedder
from llmrec.errors import IndexStoreError
from llmrec.index import Filter, open_chroma_index
from llmrec.indexing import build_index, open_store, store_spec
from llmrec.types import Item

pytestmark = pytest.mark.network


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory) -> str:
    executable = Path(sys.executable).with_name("chroma")
    if not executable.is_file():
        pytest.fail(f"the chroma CLI is missing next to {sys.executable}; install chromadb into the venv")
    port = _free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    log = (data / "server.log").open("wb")
    server = subprocess.Popen([str(executable), "run", "--host", "127.0.0.1", "--port", str(port), "--path",
                               str(data / "db")], stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"chroma run exited with {server.returncode}: {(data / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("chroma server did not answer its heartbeat within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_upsert_query_delete_and_filters_through_the_server(chroma_url):
    emb = HashingEmbedder(32)
    spec = store_spec(emb)
    index = open_chroma_index(spec, url=chroma_url, collection="llmrec-test-ops", timeout=5.0)
    assert index.folder is None and chroma_url in index.location
    texts = ["toy story animation", "alien space horror", "love in london", "space odyssey slow"]
    vectors = emb.embed(texts)
    meta = [{"hash": "h", "year": 1995, "genre_animation": True}, {"hash": "h", "year": 1979, "genre_horror": True},
            {"hash": "h", "year": 1999, "genre_romance": True}, {"hash": "h", "year": 1968}]  # fmt: skip
    with index.writing():
        index.upsert(["1", "2", "3", "4"], vectors, texts, meta)
    assert index.count() == 4 and sorted(index.ids()) == ["1", "2", "3", "4"]
    hits = index.query(vectors[1], 2)
    assert hits[0].item_id == "2" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert "2" not in {h.item_id for h in index.query(vectors[1], 4, exclude={"2"})}
    assert [h.item_id for h in index.query(vectors[0], 4, where=Filter(year_max=1980))] in (["2", "4"], ["4", "2"])
    assert [h.item_id for h in index.query(vectors[0], 4, where=Filter(genres=("Romance",)))] == ["3"]
    np.testing.assert_allclose(index.get_vectors(["4"])["4"], vectors[3], atol=1e-6)
    index.delete(["2"])
    assert index.count() == 3 and "2" not in index.get_metadata(["1", "2"])


def test_build_and_spec_check_on_the_server(chroma_url):
    emb = HashingEmbedder(32)
    items = {str(i): Item(str(i), f"Film {i}", 2000 + i, ("Drama",)) for i in range(30)}
    store = open_store("server-toy", emb, chroma_url=chroma_url)
    assert build_index(items, emb, store).embedded == 30
    assert build_index(items, emb, open_store("server-toy", emb, chroma_url=chroma_url)).unchanged == 30
    name = "llmrec-server-toy-hashing-32"  # one collection per data set and embedder
    assert store.location.endswith(name)
    other = store_spec(HashingEmbedder(64))
    with pytest.raises(IndexStoreError, match=rf"{name}.*hashing-64.*--rebuild"):
        open_chroma_index(other, url=chroma_url, collection=name)
    assert open_chroma_index(other, url=chroma_url, collection=name, rebuild=True).count() == 0
