"""LoRA fine-tuning of the LLM ranker (LlamaRec verbalizer) on a data set's training split.

``run_finetune(config)`` builds supervised ranking prompts from the training items only, trains a
peft LoRA adapter with accelerate, keeps the adapter with the best validation NDCG@10 and writes it
with an ``adapter_card.json``. ``python -m finetune CONFIG.toml`` is the command-line entry point.
Nothing heavy is imported until a run starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finetune.config import LoraTrainConfig, build_config, field_help, load_config

__all__ = ["LoraTrainConfig", "build_config", "default_out", "field_help", "load_config", "run_finetune"]


def default_out(cfg: LoraTrainConfig) -> Path:
    """``<cache>/adapters/<base model>`` (the ranker) or ``.../<base model>/<task>`` (explainer, understanding)."""
    from llmrec.paths import resolve_cache_dir

    folder = resolve_cache_dir(cfg.cache_dir) / "adapters" / cfg.base_model
    return folder if cfg.task == "rank" else folder / cfg.task


def run_finetune(
    config: str | Path | LoraTrainConfig,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    max_steps: int | None = None,
    data_dir: str | Path | None = None,
    test_users: int | None = None,
) -> Path:
    """Train a LoRA adapter for the LLM ranker as ``config`` (a TOML path or a config) says; return its folder.

    ``max_steps``, ``data_dir`` and ``test_users`` override the config; ``resume`` continues from
    ``<out>/checkpoint`` when there is one (a finished run resumed only re-runs the test evaluation).
    """
    from finetune.explain import ExplainTuner
    from finetune.train import FineTuner
    from finetune.understand import UnderstandTuner

    config_path = None if isinstance(config, LoraTrainConfig) else str(config)
    cfg = config if isinstance(config, LoraTrainConfig) else load_config(config)
    changes: dict[str, Any] = {}
    if max_steps is not None:
        changes["max_steps"] = max_steps
    if data_dir is not None:
        changes["data_dir"] = str(data_dir)
    if test_users is not None:
        changes["test_users"] = test_users
    if changes:
        cfg = cfg.replace(**changes)
    target = Path(out) if out is not None else default_out(cfg)
    overrides = {k: v for k, v in (("max_steps", max_steps), ("test_users", test_users)) if v is not None}
    tuner = {"explain": ExplainTuner, "understand": UnderstandTuner}.get(cfg.task, FineTuner)
    return tuner(cfg, target, config_path).run(resume=resume, overrides=overrides)
