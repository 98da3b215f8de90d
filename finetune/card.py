"""The shipped adapter folder: ``adapter_model.safetensors``, ``adapter_config.json``, ``adapter_card.json``.

Nothing machine-specific is shipped: peft's ``base_model_name_or_path`` (a local folder when saved) is
replaced by the registry name, and peft's generated README is dropped. The card records what made the
adapter (base model and its sha256, data, split, retriever, config), how well it ranks next to the
zero-shot model and the retriever alone, and the command that reproduces it. ``check_adapter`` reads
``base_model`` from the card to refuse an adapter on another base model.
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

from llmrec.fileutil import atomic_file

log = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
CARD_NAME = "adapter_card.json"
CARD_FORMAT = 1
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


def read_card(folder: str | Path) -> dict[str, Any] | None:
    """The card in ``folder``, or None when there is none."""
    path = Path(folder) / CARD_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_card(folder: str | Path, card: dict[str, Any]) -> Path:
    """Write ``adapter_card.json`` atomically."""
    path = Path(folder) / CARD_NAME
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        tmp.chmod(0o644)
    return path


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


def common_fields(config: dict[str, Any], spec: Any, loss: str) -> dict[str, Any]:
    """What every card says: the base model and its checksum, the LoRA method and the software."""
    import llmrec

    return {
        "format": CARD_FORMAT,
        "base_model": spec.name,
        "base_model_sha256": spec.sha256,
        "base_model_hub_id": spec.hub_id,
        "task": config.get("task", "rank"),
        "method": {
            "peft": "lora",
            "r": config["r"],
            "alpha": config["alpha"],
            "dropout": config["dropout"],
            "target_modules": config["target_modules"],
            "layers": "all" if not config["lora_layers"] else f"top {config['lora_layers']}",
            "loss": loss,
        },
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "llmrec_version": llmrec.__version__,
        "libraries": {name: _version(name) for name in ("torch", "transformers", "peft", "accelerate")},
    }


def build_card(
    *,
    config: dict[str, Any],
    spec: Any,
    dataset: dict[str, Any],
    retriever: dict[str, Any],
    training: dict[str, Any],
    validation: dict[str, Any],
    test: dict[str, Any] | None,
    prompt: str,
    labels: str,
    reproduce: str,
    blend_validated: float | None = None,
) -> dict[str, Any]:
    """The ranker adapter's card as a JSON-ready dict; ``blend_validated`` is the retrieval blend with the best
    validation NDCG@10 for the kept weights, which ``llmrec`` uses by default."""
    return {
        **common_fields(config, spec, VERBALIZER_LOSS),
        "ranker": {
            "prompt": prompt,
            "labels": labels,
            "max_history": config["max_history"],
            "kind": config["kind"],
            "blend": config["blend"],
            "blend_validated": blend_validated,
        },
        "data": dataset,
        "retriever": retriever,
        "training": training,
        "validation": validation,
        "test": test,
        "config": config,
        "reproduce": reproduce,
    }
