"""LoRA fine-tuning of the LLM ranker (LlamaRec verbalizer) on a data set's training split.

``run_finetune(config)`` builds supervised ranking prompts from the training items only, trains a
peft LoRA adapter with accelerate, keeps the adapter with the best validation NDCG@10 and writes it
with an ``adapter_card.json``. ``python -m finetune CONFIG.toml`` is the command-line entry point.
Nothing heavy is imported until a run starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from finetune.config import LoraTrainConfig, build_config, field_help, load_config

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["LoraTrainConfig", "build_config", "field_help", "load_config", "run_finetune"]


def run_finetune(config: Any, out: Any = None, **options: Any) -> Path:
    """Train an adapter; see ``finetune.train.run_finetune`` for the arguments."""
    from finetune.train import run_finetune as _run

    return _run(config, out, **options)
