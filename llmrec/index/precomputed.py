"""Item vectors made ahead of time and shipped with the package, so a first start need not embed the catalogue.

A vector file holds, for one embedder, item vectors keyed by the content hash ``llmrec.indexing`` gives every
item (sha256 of item text + template ref + embedder name; the first 16 bytes are kept). ``build_index`` asks
for the hashes it would otherwise embed and computes only what is not found, so an item whose text changed, a
new template or another data set simply falls back to the embedder: the file can be stale, never wrong.

Each file comes with a manifest (``<embedder>.json``) that records the embedder's ``fingerprint()`` (the sha256
of the model files that decide the vectors), the vector file's own sha256, the dimension and how it was made.
A manifest or file that does not check out is reported in one log line and ignored; the vectors are then
computed as usual. Vectors are stored as float16 (cosine >= 0.99999 with the float32 vectors and the same
top-10 neighbours on 99 % of queries; int8 halved the size but changed 5-12 % of top-10 lists, see
docs/benchmarks/first_start.md).

``python -m llmrec.index.precomputed --data-dir ../shared/data`` (re)makes the shipped file for ml-latest-small,
with and without the ml-25m keywords (the second is what a GroupLens download gives).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from llmrec.errors import IndexStoreError, LlmrecError

log = logging.getLogger(__name__)

FORMAT = 1
KEY_BYTES = 16
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "_data" / "embeddings"  # llmrec/_data/embeddings
LICENCE = ("vectors of MovieLens item text (movie titles, genres, user tags; ml-25m keywords): GroupLens terms "
           "apply (non-commercial; redistribution only under the same terms; cite Harper & Konstan 2015)")  # fmt: skip


class VectorSource(Protocol):
    """Vectors for content hashes: ``build_index`` uses them instead of embedding those items."""

    def lookup(self, hashes: Sequence[str]) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class Manifest:
    """What a vector file holds and what made it; a file is used only when all of it checks out."""

    format: int
    embedder: str
    embedder_fingerprint: str
    dim: int
    template: str
    count: int
    vectors_file: str
    vectors_sha256: str
    datasets: tuple[str, ...] = ()
    made_with: str = ""
    licence: str = LICENCE

    @classmethod
    def read(cls, path: Path) -> Manifest:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["datasets"] = tuple(data.get("datasets", ()))
        return cls(**data)


class PrecomputedVectors:
    """Vectors by content hash, already verified (``load_precomputed``)."""

    def __init__(self, keys: np.ndarray, vectors: np.ndarray, manifest: Manifest) -> None:
        self.manifest = manifest
        self._vectors = vectors
        self._row = {bytes(k): r for r, k in enumerate(keys)}

    def __len__(self) -> int:
        return len(self._row)

    def lookup(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """The unit-length float32 vector of every hash found; hashes not found are left out."""
        rows = {h: self._row.get(bytes.fromhex(h[: 2 * KEY_BYTES])) for h in hashes}
        found = {h: r for h, r in rows.items() if r is not None}
        if not found:
            return {}
        index = np.fromiter(found.values(), dtype=np.int64, count=len(found))
        vectors = self._vectors[index].astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return dict(zip(found, vectors))


def _problem(manifest: Manifest, embedder: Any, template: str | None) -> str | None:
    if manifest.format != FORMAT:
        return f"format {manifest.format}, this llmrec reads format {FORMAT}"
    if manifest.dim != embedder.dim:
        return f"dimension {manifest.dim}, the embedder gives {embedder.dim}"
    fingerprint = embedder.fingerprint()
    if manifest.embedder_fingerprint != fingerprint:
        return (f"made with other model files (fingerprint {manifest.embedder_fingerprint[:12]}…, "
                f"this embedder's is {fingerprint[:12]}…)")  # fmt: skip
    if template is not None and manifest.template != template:
        return f"made for {manifest.template}, this run uses {template}"
    return None


def load_precomputed(embedder: Any, folder: str | Path = SHIPPED_DIR, template: str | None = None
                     ) -> PrecomputedVectors | None:  # fmt: skip
    """The verified vector file for ``embedder`` in ``folder``, or None (logged in one line) when there is none,
    it was made with other model files or another ``template``, or it fails its checksum or shape checks."""
    from llmrec.fileutil import sha256_file

    folder = Path(folder)
    path = folder / f"{embedder.name}.json"
    if not path.is_file() or not callable(getattr(embedder, "fingerprint", None)):
        log.debug("no precomputed vectors for embedder %s in %s", embedder.name, folder)
        return None
    fix = "the vectors are computed instead; reinstall llmrec or remake them with `python -m llmrec.index.precomputed`"
    try:
        manifest = Manifest.read(path)
        try:
            problem = _problem(manifest, embedder, template)
        except LlmrecError as exc:  # the model folder itself is missing or unreadable
            problem = str(exc)
        if problem:
            log.warning("precomputed vectors %s are not used: %s; %s", path, problem, fix)
            return None
        vectors_path = folder / Path(manifest.vectors_file).name
        if sha256_file(vectors_path) != manifest.vectors_sha256:
            log.warning("precomputed vectors %s fail their checksum (corrupted or stale); %s", vectors_path, fix)
            return None
        with np.load(vectors_path, allow_pickle=False) as data:
            keys, vectors = data["keys"], data["vectors"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("precomputed vectors %s are unreadable (%s: %s); %s", path, type(exc).__name__, exc, fix)
        return None
    n = manifest.count
    norms = np.linalg.norm(vectors.astype(np.float32), axis=1) if vectors.ndim == 2 else np.zeros(0)
    if (keys.shape, keys.dtype, vectors.shape, vectors.dtype) != (
        (n, KEY_BYTES), np.uint8, (n, manifest.dim), np.float16
    ) or not (np.abs(norms - 1.0) < 1e-2).all():
        log.warning("precomputed vectors %s do not have the shape and unit length their manifest promises; %s",
                    vectors_path, fix)
        return None
    log.info("precomputed vectors for %s: %d items (%s)", embedder.name, n, ", ".join(manifest.datasets))
    return PrecomputedVectors(keys, vectors, manifest)


class ShippedVectors:
    """The package's vector file for an embedder, loaded and verified on the first lookup (hashing the model
    files costs about a second, so a store that needs nothing never pays it)."""

    def __init__(self, embedder: Any, folder: str | Path = SHIPPED_DIR, template: str | None = None) -> None:
        self.embedder = embedder
        self.folder = Path(folder)
        self.template = template
        self._loaded: PrecomputedVectors | None = None
        self._tried = False

    def lookup(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        if not self._tried:
            self._tried = True
            self._loaded = load_precomputed(self.embedder, self.folder, self.template)
        return self._loaded.lookup(hashes) if self._loaded is not None and hashes else {}


def write_precomputed(texts: Mapping[str, str], embedder: Any, template: str, folder: str | Path,
                      datasets: Sequence[str] = (), made_with: str = "") -> Manifest:  # fmt: skip
    """Embed ``texts`` (content hash -> item text) and write ``<embedder>.npz`` and its manifest atomically."""
    from llmrec.fileutil import atomic_file, sha256_file

    if not texts:
        raise IndexStoreError("no item texts to precompute; check the data set")
    folder = Path(folder)
    hashes = sorted(texts, key=lambda h: (len(texts[h]), h))  # similar lengths share a batch: less padding
    vectors = embedder.embed([texts[h] for h in hashes], show_progress=True).astype(np.float16)
    keys = np.frombuffer(b"".join(bytes.fromhex(h[: 2 * KEY_BYTES]) for h in hashes), dtype=np.uint8)
    target = folder / f"{embedder.name}.npz"
    with atomic_file(target) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, keys=keys.reshape(len(hashes), KEY_BYTES), vectors=vectors)
        digest = sha256_file(tmp)
        tmp.chmod(0o644)  # package data: readable by everyone (the temporary file was private)
    manifest = Manifest(FORMAT, embedder.name, embedder.fingerprint(), int(embedder.dim), template, len(hashes),
                        target.name, digest, tuple(datasets), made_with)  # fmt: skip
    with atomic_file(folder / f"{embedder.name}.json") as tmp:
        tmp.write_text(json.dumps(asdict(manifest), indent=1) + "\n", encoding="utf-8")
        tmp.chmod(0o644)
    return manifest


def default_dataset_texts(data_dir: str | Path, embedder_name: str) -> tuple[dict[str, str], str, list[str]]:
    """Content hash -> item text for ml-latest-small with and without the ml-25m keywords; the template ref;
    the variants found."""
    from llmrec.data import load_dataset
    from llmrec.data.item_text import item_text
    from llmrec.indexing import content_hash
    from llmrec.prompts import load_prompt

    template = load_prompt("item_text")
    texts: dict[str, str] = {}
    variants = []
    for keywords in (True, False):
        ds = load_dataset("ml-latest-small", data_dir=data_dir, allow_download=False, keywords=keywords)
        has_keywords = any(item.keywords for item in ds.items.values())
        if keywords and not has_keywords:
            continue  # no keyword file: the second pass gives the same texts
        variants.append(f"ml-latest-small{'+ml-25m-keywords' if has_keywords else ''} ({len(ds.items)} items)")
        for item in ds.items.values():
            text = item_text(item, template)
            texts[content_hash(text, template.ref, embedder_name)] = text
    return texts, template.ref, variants


def main(argv: Sequence[str] | None = None) -> None:
    """Remake the shipped vector file (a maintainer's command; see the module docstring)."""
    import argparse
    import platform

    parser = argparse.ArgumentParser(prog="python -m llmrec.index.precomputed", description=main.__doc__)
    parser.add_argument("--data-dir", default="../shared/data", help="folder holding ml-latest-small/")
    parser.add_argument("--embedder", default="all-minilm-l6-v2")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", default=str(SHIPPED_DIR))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from llmrec.embedding import get_embedder

    embedder = get_embedder(args.embedder, cache_dir=args.cache_dir)
    texts, template, variants = default_dataset_texts(args.data_dir, embedder.name)
    import sentence_transformers
    import torch

    made_with = (f"python -m llmrec.index.precomputed --data-dir {args.data_dir}; sentence-transformers "
                 f"{sentence_transformers.__version__}, torch {torch.__version__}, {platform.machine()} CPU")
    manifest = write_precomputed(texts, embedder, template, args.out, variants, made_with)
    size = (Path(args.out) / manifest.vectors_file).stat().st_size
    log.info("wrote %d vectors (%s) to %s: %.1f MB", manifest.count, "; ".join(variants), args.out, size / 1e6)


if __name__ == "__main__":
    main()
