"""Where the files that ship with llmrec live: the versioned prompts and the LoRA adapters.

In the source tree they are the top-level ``prompts/`` and ``finetune/adapters/`` folders; in a built wheel
``pyproject.toml`` maps them into the package as ``llmrec/_prompts`` and ``llmrec/_adapters`` (package data).
Both layouts are found from this file's location, so llmrec works from any working directory either way.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _first_folder(*candidates: Path) -> Path:
    return next((c for c in candidates if c.is_dir()), candidates[-1])


def prompts_dir() -> Path:
    """The folder of ``<task>/v<N>.toml`` prompt files."""
    return _first_folder(_PACKAGE / "_prompts", _PACKAGE.parent / "prompts")


def adapters_dir() -> Path:
    """The folder of shipped adapters: ``<model>/`` (ranker), ``<model>/explain/``, ``<model>/understand/``."""
    return _first_folder(_PACKAGE / "_adapters", _PACKAGE.parent / "finetune" / "adapters")
