"""Where the files that ship with llmrec live: the versioned prompts, the LoRA adapters and the retriever
checkpoints the shipped fusion models were fitted over.

In the source tree they are the top-level ``prompts/``, ``finetune/adapters/`` and ``finetune/retrievers/``
folders; in a built wheel ``pyproject.toml`` maps them into the package as ``llmrec/_prompts``,
``llmrec/_adapters`` and ``llmrec/_retrievers`` (package data).
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


def retrievers_dir() -> Path:
    """The folder of shipped retriever checkpoints, one ``<cache folder name>/`` each (``shipped_retrievers``)."""
    return _first_folder(_PACKAGE / "_retrievers", _PACKAGE.parent / "finetune" / "retrievers")
