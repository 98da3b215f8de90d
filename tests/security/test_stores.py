"""What is on disk: a corrupted or zero-byte vector store (held / case 5), two writers (held), a killed index
(held), an embedder mismatch and a pickled adapter (held), and "forget me" in the SQLite profile store (held)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest

from llmrec.embedding import HashingEmbedder
from llmrec.errors import IndexStoreError, ModelError

TESTS = Path(__file__).resolve().parents[1]
TINY = TESTS / "data" / "tiny-movies"
FAKE = TESTS / "data" / "fake-models.toml"
STORE = ("stores", "tiny-movies-hashing-256")  # where `llmrec` keeps the fixture catalogue's store in a cache


def llmrec(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmrec.cli", *args, "--cache-dir", str(cache)], capture_output=True,
                          text=True, timeout=600)  # fmt: skip


def one_line_error(out: subprocess.CompletedProcess[str], *words: str) -> None:
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr[-800:]
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and all(w in lines[0] for w in words), out.stderr[-800:]


def test_a_corrupted_store_is_reported_and_left_alone(tmp_path: Path) -> None:
    folder = tmp_path.joinpath(*STORE)
    folder.mkdir(parents=True)
    (folder / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    out = llmrec("recommend", str(TINY), "--config", str(FAKE), "--user", "u1", cache=tmp_path)
    one_line_error(out, "corrupted", "--rebuild")
    assert (folder / "chroma.sqlite3").read_bytes() == b"this is not a database" * 100


def test_a_zero_byte_store_is_reported_like_the_other_corruptions(tmp_path: Path) -> None:
    folder = tmp_path.joinpath(*STORE)
    folder.mkdir(parents=True)
    (folder / "chroma.sqlite3").write_bytes(b"")
    out = llmrec("recommend", str(TINY), "--config", str(FAKE), "--user", "u1", cache=tmp_path)
    one_line_error(out, "--rebuild")
    assert (folder / "chroma.sqlite3").stat().st_size == 0


def test_two_writers_never_write_at_once(tmp_path: Path) -> None:
    """A second writer waits for the lock (or is refused in one line); it never writes beside the first."""
    from llmrec.index.base import exclusive_lock
    from llmrec.index.chroma import LOCK_NAME

    folder = tmp_path / "store"
    index = ("index", str(TINY), "--embedder", "hashing-256", "--store", str(folder))
    assert llmrec(*index, cache=tmp_path).returncode == 0
    command = [sys.executable, "-m", "llmrec.cli", *index, "--rebuild", "--cache-dir", str(tmp_path)]
    with exclusive_lock(folder / LOCK_NAME, str(folder)):
        second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with contextlib.suppress(subprocess.TimeoutExpired):  # waiting for the lock, as it should
            second.wait(timeout=4)
        refused = second.returncode
    out, err = second.communicate(timeout=300)
    if refused is not None:  # refused while the lock was held: one line that says why
        assert refused != 0 and "another process" in err and "Traceback" not in err, err[-800:]
    else:  # waited, then wrote once the lock was free
        assert second.returncode == 0 and "Traceback" not in err, err[-800:]
        assert "40 in the store" in out, out


class Dying(HashingEmbedder):
    """Embeds two batches, then the process is "killed"."""

    def __init__(self, die_at: int | None) -> None:
        super().__init__(32)
        self.calls, self.texts, self.die_at = 0, 0, die_at

    def _embed_batch(self, texts: list[str]):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.die_at is not None and self.calls >= self.die_at:
            raise KeyboardInterrupt
        self.texts += len(texts)
        return super()._embed_batch(texts)


def test_a_killed_index_resumes_to_the_exact_count(tmp_path: Path) -> None:
    from llmrec.data import load_dataset
    from llmrec.index import open_chroma_index
    from llmrec.indexing import build_index, store_spec

    data = load_dataset(str(TINY))
    dying = Dying(die_at=3)
    with pytest.raises(KeyboardInterrupt):
        build_index(data, dying, open_chroma_index(store_spec(dying), path=tmp_path / "s"), batch_size=8)
    resumed = Dying(die_at=None)
    report = build_index(data, resumed, open_chroma_index(store_spec(resumed), path=tmp_path / "s"), batch_size=8)
    assert (report.embedded, report.unchanged, report.total) == (len(data.items) - 16, 16, len(data.items))
    assert resumed.texts == len(data.items) - 16


def test_a_store_made_with_another_embedder_is_refused(tmp_path: Path) -> None:
    from llmrec.index import StoreSpec, open_chroma_index

    folder = tmp_path / "store"
    made = llmrec("index", str(TINY), "--embedder", "hashing-256", "--store", str(folder), cache=tmp_path)
    assert made.returncode == 0
    with pytest.raises(IndexStoreError, match="--rebuild"):
        open_chroma_index(StoreSpec("another-embedder", 256, "item_text@1"), path=folder)


def test_a_pickled_adapter_is_refused(tmp_path: Path) -> None:
    from llmrec.llm.local import check_adapter

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"base_model_name_or_path": "Qwen/Qwen2.5-Coder-0.5B-Instruct"}')
    (folder / "adapter_model.bin").write_bytes(b"\x80\x04pickled")
    with pytest.raises(ModelError, match="pickled"):
        check_adapter(folder, "qwen2.5-coder-0.5b-instruct")


def test_forget_me_leaves_no_trace_in_sqlite(tmp_path: Path) -> None:
    from fixtures_catalog import fake_recommender
    from llmrec.chat.engine import Conversation
    from llmrec.chat.store import ProfileStore

    store = ProfileStore(tmp_path / "profiles.sqlite")
    convo = Conversation(fake_recommender(explainer={"kind": "template"}), store, "web-forgetful")
    for message in ("My secret is ZEBRA-7781, I loved Toy Story", "recommend something", "I like Heat"):
        convo.handle(message)
    assert any(b"ZEBRA-7781" in p.read_bytes() for p in tmp_path.iterdir())
    convo.handle("forget me")
    assert store.load("web-forgetful") is None and store.turns("web-forgetful") == []
    for path in tmp_path.iterdir():
        assert b"ZEBRA-7781" not in path.read_bytes(), path.name
