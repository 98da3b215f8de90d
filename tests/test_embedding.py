"""Embedders: the base class chores (cleaning, batching, checks) and the deterministic hashing fake."""

from __future__ import annotations

import numpy as np
import pytest

from llmrec.embedding import (
    EMPTY_TEXT,
    BaseEmbedder,
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    clean_for_embedding,
    get_embedder,
)
from llmrec.errors import ConfigError, ModelError


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


def test_hashing_embedder_is_deterministic_unit_length_float32():
    emb = HashingEmbedder(64)
    texts = ["Toy Story (1995) Animation Children", "Alien (1979) Horror Sci-Fi"]
    a, b = emb.embed(texts), HashingEmbedder(64).embed(texts)
    assert isinstance(emb, Embedder)
    assert a.shape == (2, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-6)
    assert emb.name == "hashing-64" and emb.dim == 64


def test_hashing_embedder_puts_shared_words_close():
    emb = HashingEmbedder(256)
    toy, toy2, alien = emb.embed(["toy story animation pixar", "toy story 2 animation pixar", "alien horror space"])
    assert cos(toy, toy2) > 0.6 > cos(toy, alien)


@pytest.mark.parametrize(
    "text",
    ["", "   \n\t ", "\ud800 lone surrogate \udfff", "😀🎬🍿 emoji only", "שלום עולם فيلم رائع", "\x00\x07ctrl", "!!!"],
)
def test_awkward_text_embeds_to_a_finite_unit_vector(text: str):
    vec = HashingEmbedder(32).embed([text])
    assert vec.shape == (1, 32) and np.isfinite(vec).all()
    assert np.linalg.norm(vec) == pytest.approx(1.0, rel=1e-5)


def test_empty_text_is_embedded_as_the_fixed_token():
    emb = HashingEmbedder(32)
    np.testing.assert_array_equal(emb.embed([""]), emb.embed([EMPTY_TEXT]))
    assert clean_for_embedding("  ") == EMPTY_TEXT


def test_one_megabyte_text_is_capped_not_refused():
    text = "word " * 200_000  # 1 MB
    assert len(clean_for_embedding(text)) <= 4096
    assert HashingEmbedder(32).embed([text]).shape == (1, 32)


def test_clean_for_embedding_removes_controls_and_surrogates():
    cleaned = clean_for_embedding("a\x00b\ud800c\n d")
    assert "\x00" not in cleaned and "\ud800" not in cleaned
    cleaned.encode("utf-8")  # valid UTF-8 now


def test_inputs_are_validated():
    emb = HashingEmbedder(16)
    assert emb.embed([]).shape == (0, 16)
    with pytest.raises(ConfigError, match="list of texts"):
        emb.embed("one string")
    with pytest.raises(ConfigError, match="must be str"):
        emb.embed([None])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="at least 8"):
        HashingEmbedder(4)


class Recording(BaseEmbedder):
    """Implements only ``_embed_batch``; records the batches it was given."""

    name = "recording"

    def __init__(self, batch_size: int = 3, broken: str = "") -> None:
        self.batch_size = batch_size
        self.broken = broken
        self.batches: list[list[str]] = []

    @property
    def dim(self) -> int:
        return 4

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        self.batches.append(texts)
        out = np.tile(np.array([3.0, 4.0, 0.0, 0.0], dtype=np.float32), (len(texts), 1))
        if self.broken == "shape":
            return out[:, :3]
        if self.broken == "nan":
            out[0, 0] = np.nan
        return out


def test_base_class_batches_cleans_and_normalises():
    emb = Recording(batch_size=3)
    out = emb.embed(["a", "", "c", "d", "e", "f", "g"], show_progress=True)
    assert [len(b) for b in emb.batches] == [3, 3, 1]
    assert emb.batches[0][1] == EMPTY_TEXT
    np.testing.assert_allclose(out[0], [0.6, 0.8, 0.0, 0.0], rtol=1e-6)


@pytest.mark.parametrize("broken, message", [("shape", "shape"), ("nan", "NaN")])
def test_base_class_rejects_bad_model_output(broken: str, message: str):
    with pytest.raises(ModelError, match=message):
        Recording(broken=broken).embed(["x"])


def test_registry_names_and_lazy_real_model(tmp_path):
    assert get_embedder("hashing-256").dim == 256
    with pytest.raises(ConfigError, match="unknown embedder 'nope'"):
        get_embedder("nope")
    lazy = SentenceTransformerEmbedder("missing", tmp_path)
    assert lazy._model is None  # nothing loads until the first embed
    with pytest.raises(ModelError, match="no sentence-transformers model"):
        lazy.embed(["x"])


def test_dimension_is_read_from_the_folder_without_loading(tmp_path):
    import json

    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]))  # fmt: skip
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 384}))
    lazy = SentenceTransformerEmbedder("folder-model", tmp_path)
    assert lazy.dim == 384 and lazy._model is None
