"""The shipped adapter folder: ``adapter_model.safetensors``, ``adapter_config.json``, ``adapter_card.json``.

Nothing machine-specific is shipped: peft's ``base_model_name_or_path`` (a local folder when saved) is
replaced by the registry name, and peft's generated README is dropped. The card records what made the
adapter (base model and its sha256, data, split, retriever, config), how well it ranks next to the
zero-shot model and the retriever alone, and the command that reproduces it, as an ``llmrec.adapters.AdapterCard``
(the one owner of the card's format, which the pipeline reads).
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from llmrec.adapters import AdapterCard, LoraMethod

log = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
VERBALIZER_LOSS = "cross-entropy over the label tokens' logits at the answer position (verbalizer)"


def save_adapter(model: Any, folder: str | Path, base_model: str) -> Path:
    """Save the LoRA weights of ``model`` (a peft model) as safetensors into ``folder``, replacing files
    one by one only after all of them were written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".adapter-", dir=folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        config_path = Path(tmp) / "adapter_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = base_model  # the registry name, never a local path
        config["revision"] = None
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        for name in ADAPTER_FILES:
            if not (Path(tmp) / name).is_file():
                raise RuntimeError(f"peft did not write {name}; check the peft version")
        for name in ADAPTER_FILES:
            (Path(tmp) / name).chmod(0o644)
            os.replace(Path(tmp) / name, folder / name)
    return folder


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def reproduce_command(
    config_path: str | None, out: Path, data_dir: str | None, max_steps: int | None, test_users: int | None = None
) -> str:
    """The one command line that makes this adapter (and its figures) again."""
    parts = ["python", "-m", "finetune", config_path or "<config.toml>", "--out", str(out)]
    if data_dir:
        parts += ["--data-dir", str(data_dir)]
    if max_steps is not None:
        parts += ["--max-steps", str(max_steps)]
    if test_users is not None:
        parts += ["--test-users", str(test_users)]
    return " ".join(parts)


def card_for(config: dict[str, Any], spec: Any, loss: str, settings: dict[str, Any], reproduce: str,
             **figures: Any) -> AdapterCard:
    """An ``AdapterCard`` for an adapter trained with ``config`` on ``spec``'s base model; ``settings`` are the
    task's own (prompt ref, labels, blend), ``figures`` the data / training / validation / test sections."""
    import llmrec

    method = LoraMethod(
        r=int(config["r"]), alpha=float(config["alpha"]), dropout=float(config["dropout"]),
        target_modules=tuple(config["target_modules"]),
        layers="all" if not config["lora_layers"] else f"top {config['lora_layers']}", loss=loss,
    )  # fmt: skip
    return AdapterCard(
        task=config.get("task", "rank"), base_model=spec.name, base_model_sha256=spec.sha256,
        base_model_hub_id=spec.hub_id, method=method, settings=settings, reproduce=reproduce, config=config,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), llmrec_version=llmrec.__version__,
        libraries={name: _version(name) for name in ("torch", "transformers", "peft", "accelerate")}, **figures,
    )  # fmt: skip
