"""Where llmrec keeps what it derives: downloaded data sets, converted models, vector stores.

The cache folder is an argument everywhere; this module only supplies the default. The CLI lets
users override it with ``--cache-dir`` or ``LLMREC_CACHE_DIR``; the library itself reads no
environment variables.
"""

from __future__ import annotations

from pathlib import Path


def default_cache_dir() -> Path:
    """The per-user cache folder (``~/.cache/llmrec`` on Linux)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("llmrec", appauthor=False))


def resolve_cache_dir(cache_dir: str | Path | None) -> Path:
    """``cache_dir`` when given, else the default; created if missing."""
    path = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path
