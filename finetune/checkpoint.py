"""Training checkpoints in ``<out>/checkpoint``: LoRA weights, optimizer state and RNG state as safetensors
(no pickles anywhere), plus ``state.json`` with the step, the best validation metric and the config.

Checkpoints are written only at update boundaries, so a resumed run continues with the next update;
the example order is a pure function of the seed and the step, so nothing else needs saving.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmrec.errors import ConfigError
from llmrec.fileutil import atomic_dir

log = logging.getLogger(__name__)

STATE_NAME = "state.json"
OPTIMIZER_NAME = "optimizer.safetensors"
# Settings a resumed run may change; any other difference means another experiment.
RESUMABLE = frozenset({"max_steps", "max_seconds", "eval_every", "patience", "test_users", "threads",
                       "eval_batch_size", "keep_checkpoint", "data_dir", "cache_dir"})  # fmt: skip


@dataclass
class RunState:
    """What ``state.json`` records; everything a resumed run needs besides tensors."""

    step: int = 0
    best_metric: float = -1.0
    best_step: int = 0
    bad_evals: int = 0
    elapsed: float = 0.0
    train_seconds: float = 0.0
    stop_reason: str = ""
    losses: list[list[float]] = field(default_factory=list)  # [step, mean loss]
    evals: list[dict[str, Any]] = field(default_factory=list)
    zero_shot: dict[str, Any] = field(default_factory=dict)
    retriever: dict[str, float] = field(default_factory=dict)
    best_validation: dict[str, Any] = field(default_factory=dict)
    resumed_from: list[int] = field(default_factory=list)
    skipped_updates: list[int] = field(default_factory=list)  # updates dropped for a non-finite gradient
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunState:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})


def checkpoint_dir(out: str | Path) -> Path:
    return Path(out) / "checkpoint"


def optimizer_tensors(optimizer: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Flatten an optimizer state dict into named tensors plus JSON-ready param groups."""
    import torch

    state = optimizer.state_dict()
    tensors: dict[str, Any] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"state.{index}.{name}"] = value.detach().cpu().contiguous()
    return tensors, state["param_groups"]


def restore_optimizer(optimizer: Any, tensors: dict[str, Any], groups: list[dict[str, Any]]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(out: str | Path, model: Any, optimizer: Any, state: dict[str, Any]) -> Path:
    """Write the checkpoint atomically (a crash leaves the previous one in place)."""
    import torch
    from safetensors.torch import save_file

    target = checkpoint_dir(out)
    tensors, groups = optimizer_tensors(optimizer)
    tensors["rng.torch"] = torch.get_rng_state()
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / "README.md").unlink(missing_ok=True)
        save_file(tensors, str(tmp / OPTIMIZER_NAME))
        payload = {**state, "param_groups": groups}
        (tmp / STATE_NAME).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return target


def read_state(out: str | Path) -> dict[str, Any] | None:
    """``state.json`` of the checkpoint in ``out``, or None when there is no checkpoint."""
    path = checkpoint_dir(out) / STATE_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def check_compatible(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to resume a checkpoint made with other model, data or LoRA settings."""
    changed = sorted(k for k in set(saved) | set(current) if k not in RESUMABLE and saved.get(k) != current.get(k))
    if changed:
        first = changed[0]
        raise ConfigError(
            f"finetune: cannot resume, the checkpoint was made with {first}={saved.get(first)!r} but the config says "
            f"{current.get(first)!r} ({len(changed)} setting(s) differ); use the same config or another --out"
        )


def load_checkpoint(out: str | Path, model: Any, optimizer: Any) -> dict[str, Any]:
    """Load LoRA weights, optimizer and RNG state into ``model``/``optimizer``; return the saved state."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = checkpoint_dir(out)
    state = read_state(out)
    if state is None:
        raise ConfigError(f"finetune: no checkpoint in {folder}; run without --resume")
    set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))
    tensors = load_file(str(folder / OPTIMIZER_NAME))
    torch.set_rng_state(tensors.pop("rng.torch"))
    restore_optimizer(optimizer, tensors, state.pop("param_groups"))
    log.info("resumed from %s at step %d", folder, state["step"])
    return state


def load_adapter_weights(model: Any, folder: str | Path) -> None:
    """Load ``adapter_model.safetensors`` from ``folder`` into the peft ``model``."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(Path(folder) / "adapter_model.safetensors")))


def discard_checkpoint(out: str | Path) -> None:
    folder = checkpoint_dir(out)
    if folder.is_dir():
        shutil.rmtree(folder)
        log.info("discarded the old checkpoint in %s", folder)


__all__ = [
    "RunState",
    "check_compatible",
    "checkpoint_dir",
    "discard_checkpoint",
    "load_adapter_weights",
    "load_checkpoint",
    "read_state",
    "save_checkpoint",
]
