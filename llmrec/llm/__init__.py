"""Language and embedding models: an explicit registry, offline resolution to a loadable folder, and a
minimal transformers backend. Nothing here imports torch, transformers or huggingface_hub at import time.
"""

from __future__ import annotations

from llmrec.llm.registry import (
    DEFAULT_EMBEDDER,
    DEFAULT_LLM,
    ModelSpec,
    PackagedPart,
    get_spec,
    known_models,
    register_model,
)
from llmrec.llm.resolve import ModelStatus, list_models, prepare_model, prepared_path

__all__ = [
    "DEFAULT_EMBEDDER",
    "DEFAULT_LLM",
    "ModelSpec",
    "ModelStatus",
    "PackagedPart",
    "get_spec",
    "known_models",
    "list_models",
    "prepare_model",
    "prepared_path",
    "register_model",
]
