"""The Hugging Face Hub: the only module that imports ``huggingface_hub``.

Only safetensors weights, JSON configs and tokenizer files are fetched — never ``.bin``, ``.pt`` or
other pickles — and nothing here runs without the caller asking for it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from llmrec.errors import ModelError, NetworkError

log = logging.getLogger(__name__)

# What a transformers / sentence-transformers folder needs; fnmatch's ``*`` also crosses ``/``, so
# ``*.json`` takes ``1_Pooling/config.json`` too.
ALLOW_PATTERNS = ["*.safetensors", "*.json", "*.txt", "*.model", "*.jinja"]
IGNORE_PATTERNS = ["*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt", "*.h5", "*.msgpack", "*.onnx", "onnx/*",
                   "openvino/*"]


def _patterns_kwargs() -> dict[str, list[str]]:
    return {"allow_patterns": list(ALLOW_PATTERNS), "ignore_patterns": list(IGNORE_PATTERNS)}


def find_cached(hub_id: str, hf_cache_dir: str | Path | None = None) -> Path | None:
    """The snapshot folder of ``hub_id`` in the Hugging Face cache, or None; never touches the network."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(hub_id, cache_dir=hf_cache_dir, local_files_only=True, **_patterns_kwargs())
    except Exception as error:  # a cache miss has many shapes (missing, partial, bad id)
        log.debug("%s is not in the Hugging Face cache: %s", hub_id, error)
        return None
    return Path(folder)


def download(hub_id: str, hf_cache_dir: str | Path | None = None, endpoint: str | None = None) -> Path:
    """Download the safetensors snapshot of ``hub_id`` into the Hugging Face cache; NetworkError on failure."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    log.info("downloading %s from the Hugging Face Hub (safetensors, configs and tokenizer files only)", hub_id)
    try:
        folder = snapshot_download(hub_id, cache_dir=hf_cache_dir, endpoint=endpoint, **_patterns_kwargs())
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise ModelError(f"Hugging Face repository {hub_id!r} was not found ({_first_line(error)}); "
                         "fix: check the hub id") from None
    except GatedRepoError:
        raise NetworkError(f"Hugging Face repository {hub_id!r} is gated; fix: accept its licence on the Hub "
                           "and log in with `hf auth login`") from None
    except Exception as error:  # connection, timeout, offline mode, HTTP 5xx, disk
        raise NetworkError(f"could not download {hub_id!r} from the Hugging Face Hub: "
                           f"{type(error).__name__}: {_first_line(error)}; fix: check the network connection "
                           "or use a packaged model or a local folder") from None
    return Path(folder)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no details"
