"""LoRA adapters as typed values: the card that describes one, and where the shipped ones live.

One module owns the card's format. ``finetune/`` builds an ``AdapterCard`` and writes it beside the weights;
the pipeline reads it with ``read_card`` to check the base model and to take the validated settings (the
ranker's retrieval blend). The JSON keys stay those of the cards already shipped (format 1): the task's own
settings sit under ``ranker`` / ``explainer`` / ``understanding``, figures under ``data``, ``training``,
``validation`` and ``test``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmrec.errors import ModelError
from llmrec.fileutil import atomic_file
from llmrec.resources import adapters_dir

CARD_NAME = "adapter_card.json"
CARD_FORMAT = 1
TASKS = ("rank", "explain", "understand")
SETTINGS_KEY = {"rank": "ranker", "explain": "explainer", "understand": "understanding"}
_FIGURES = ("data", "retriever", "training", "validation", "test", "config")


@dataclass(frozen=True)
class LoraMethod:
    """How the adapter was trained: the LoRA shape and the loss."""

    r: int
    alpha: float
    dropout: float
    target_modules: tuple[str, ...]
    layers: str  # "all" or "top N"
    loss: str
    peft: str = "lora"


@dataclass(frozen=True)
class AdapterCard:
    """What made an adapter and how well it does; ``settings`` are the task's own (prompt ref, labels, blend)."""

    task: str
    base_model: str
    base_model_sha256: str | None
    method: LoraMethod
    settings: Mapping[str, Any] = field(default_factory=dict)
    reproduce: str = ""
    base_model_hub_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    retriever: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    validation: Mapping[str, Any] = field(default_factory=dict)
    test: Mapping[str, Any] | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    created: str = ""
    llmrec_version: str = ""
    libraries: Mapping[str, str | None] = field(default_factory=dict)
    format: int = CARD_FORMAT

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ModelError(f"adapter card task {self.task!r} is unknown; use one of {', '.join(TASKS)}")

    @property
    def prompt(self) -> str:
        """The ``task@version`` of the prompt the adapter was trained on."""
        return str(self.settings.get("prompt", ""))

    # The ranker's retrieval blend --------------------------------------------------------------
    def validated_blend(self, zero_shot: bool = False, default: float = 0.0) -> float:
        """The retrieval blend chosen on validation: the recorded ``blend_validated``, else the best of the kept
        weights' validation sweep, else the training blend; with ``zero_shot`` the best blend of the card's
        zero-shot sweep (the base model without this adapter)."""
        if self.settings.get("blend_validated") is not None and not zero_shot:
            return float(self.settings["blend_validated"])
        which = "zero_shot" if zero_shot else "lora"
        sweep = (self.validation.get(which) or {}).get("ndcg@10_by_blend") or {}
        if sweep:
            return best_blend(sweep)
        return float(self.settings.get("blend", default))

    # JSON ----------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        method = dataclasses.asdict(self.method)
        method["target_modules"] = list(self.method.target_modules)
        out: dict[str, Any] = {
            "format": self.format, "base_model": self.base_model, "base_model_sha256": self.base_model_sha256,
            "base_model_hub_id": self.base_model_hub_id, "task": self.task, "method": method,
            "created": self.created, "llmrec_version": self.llmrec_version, "libraries": dict(self.libraries),
            SETTINGS_KEY[self.task]: dict(self.settings),
        }  # fmt: skip
        for name in _FIGURES:
            value = getattr(self, name)
            if value or (name == "test" and self.task == "rank"):
                out[name] = dict(value) if value is not None else None
        out["reproduce"] = self.reproduce
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "adapter card") -> AdapterCard:
        try:
            task = str(data.get("task") or "rank")  # the first ranker cards predate the key
            method = dict(data["method"])
            method.pop("peft", None)
            return cls(
                task=task, base_model=str(data["base_model"]), base_model_sha256=data.get("base_model_sha256"),
                base_model_hub_id=data.get("base_model_hub_id"),
                method=LoraMethod(**{**method, "target_modules": tuple(method["target_modules"])}),
                settings=dict(data.get(SETTINGS_KEY.get(task, ""), {}) or {}), reproduce=str(data.get("reproduce", "")),
                test=data.get("test"), created=str(data.get("created", "")),
                llmrec_version=str(data.get("llmrec_version", "")), libraries=dict(data.get("libraries") or {}),
                format=int(data.get("format", CARD_FORMAT)),
                **{name: dict(data.get(name) or {}) for name in _FIGURES if name != "test"},
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            raise ModelError(f"{where} is malformed ({problem}); re-create it with finetune") from None

    def write(self, folder: str | Path) -> Path:
        """Write ``adapter_card.json`` into ``folder`` atomically."""
        path = Path(folder) / CARD_NAME
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
            tmp.chmod(0o644)
        return path


def best_blend(sweep: Mapping[str, float]) -> float:
    """The blend with the best validation NDCG@10 in ``{blend: ndcg}``; ties go to the more LLM-driven blend."""
    return float(max(sweep, key=lambda b: (sweep[b], -float(b))))


def read_card(folder: str | Path | None) -> AdapterCard | None:
    """The card in ``folder``, or None when there is none (or no folder)."""
    if folder is None:
        return None
    path = Path(folder) / CARD_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"adapter card {path} cannot be read ({exc}); re-create it with finetune") from None
    if not isinstance(data, dict):
        raise ModelError(f"adapter card {path} is not a JSON object; re-create it with finetune")
    return AdapterCard.from_json(data, where=f"adapter card {path}")


def task_folder(model_folder: str | Path, task: str) -> Path:
    """Where ``task``'s adapter sits for one model: the ranker in the model's folder, others in a sub-folder."""
    if task not in TASKS:
        raise ModelError(f"unknown adapter task {task!r}; use one of {', '.join(TASKS)}")
    return Path(model_folder) if task == "rank" else Path(model_folder) / task


def shipped_adapter(model: str, task: str = "rank") -> Path | None:
    """The adapter shipped with llmrec for ``model`` and ``task``, if there is one."""
    folder = task_folder(adapters_dir() / model, task)
    return folder if (folder / "adapter_model.safetensors").is_file() else None
