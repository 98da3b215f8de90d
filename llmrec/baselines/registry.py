"""The explicit registry of scorers: a name, a factory, a small search grid and a label.

``register_scorer`` is the one way in; ``get_scorer`` builds a model by name and names the known
models when the name is unknown. Factories import their modules on call, so neither torch nor
implicit is imported until a model that needs it is built.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from llmrec.baselines.base import Scorer
from llmrec.errors import ConfigError

log = logging.getLogger(__name__)

SearchSpace = Mapping[str, Sequence[Any]]


@dataclass(frozen=True)
class ScorerSpec:
    name: str
    factory: Callable[..., Scorer]  # keyword hyper-parameters -> an unfitted Scorer
    search_space: SearchSpace = field(default_factory=dict)  # grid searched on the validation item
    label: str = ""  # for tables: what the model is and which library backs it
    defaults: Mapping[str, Any] = field(default_factory=dict)  # fixed settings applied before grid values

    def build(self, **params: Any) -> Scorer:
        return self.factory(**{**self.defaults, **params})


_REGISTRY: dict[str, ScorerSpec] = {}
_BUILTINS_ADDED = False


def _registry() -> dict[str, ScorerSpec]:
    """The registry, with the built-in models of ``llmrec.baselines.builtin`` added on first use.

    The built-ins are registered by an explicit call, not by importing a module for its side effect
    (no import loop: ``builtin`` imports this module, never the other way round at import time).
    """
    global _BUILTINS_ADDED
    if not _BUILTINS_ADDED:
        _BUILTINS_ADDED = True
        from llmrec.baselines.builtin import register_builtin_scorers

        register_builtin_scorers(register_scorer)
    return _REGISTRY


def register_scorer(
    name: str,
    factory: Callable[..., Scorer],
    search_space: SearchSpace | None = None,
    label: str = "",
    defaults: Mapping[str, Any] | None = None,
    replace: bool = False,
) -> ScorerSpec:
    """Add a scorer under ``name``; re-registering a name needs ``replace=True``."""
    registry = _registry()
    if name in registry and not replace:
        raise ConfigError(f"scorer {name!r} is already registered; pass replace=True to override it")
    spec = ScorerSpec(
        name,
        factory,
        MappingProxyType(dict(search_space or {})),
        label or name,
        MappingProxyType(dict(defaults or {})),
    )
    registry[name] = spec
    return spec


def scorer_spec(name: str) -> ScorerSpec:
    try:
        return _registry()[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(sorted(_registry()))}") from None


def get_scorer(name: str, **params: Any) -> Scorer:
    """An unfitted scorer by registry name, with the spec's defaults overridden by ``params``."""
    return scorer_spec(name).build(**params)


def get_checkpointed_scorer(name: str, folder: str | Path, **params: Any) -> Scorer:
    """``get_scorer``, with training checkpoints in ``folder`` resumed: the models that train for minutes
    (SASRec, NCF, LightGCN, CFGAN) train once per folder and are then loaded; the others are built plainly.
    The folder's name should identify the data and settings (a resumed checkpoint refuses other data)."""
    scorer = get_scorer(name, **params)
    if not any(f.name == "checkpoint_dir" for f in dataclasses.fields(getattr(scorer, "config", None) or _NoConfig)):
        return scorer
    folder = _settings_folder(Path(folder), scorer.hyperparameters())
    if (folder / "state.json").is_file() or any(folder.glob("*/state.json")):  # a model, or an ensemble's members
        log.info("%s: reusing the model trained in %s", name, folder)
    else:
        log.warning("%s: training once (minutes), then reused from %s", name, folder)
    return get_scorer(name, **params, checkpoint_dir=str(folder), resume=True)


def _settings_folder(folder: Path, hyperparameters: dict[str, Any]) -> Path:
    """``folder``, unless it holds a checkpoint made with other settings (e.g. defaults changed by an upgrade):
    then a sibling named by a hash of these settings, so the old checkpoint is neither refused nor overwritten."""
    import hashlib
    import json

    state = folder / "state.json"
    if not state.is_file():
        return folder
    try:
        saved = json.loads(state.read_text(encoding="utf-8")).get("fingerprint", {})
    except (OSError, ValueError):
        return folder  # the trainer reports a damaged checkpoint itself
    budget = {"epochs", "patience"}  # may change on resume (llmrec.baselines.training.BUDGET_FIELDS)
    wanted = json.loads(json.dumps({k: v for k, v in hyperparameters.items() if k not in budget}))
    if all(saved.get(k) == v for k, v in wanted.items()):
        return folder
    digest = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:10]
    log.info("%s holds a checkpoint made with other settings; using %s-%s", folder, folder.name, digest)
    return folder.with_name(f"{folder.name}-{digest}")


@dataclass
class _NoConfig:
    """Stands in for the config of scorers that have none (no checkpoints)."""


def scorer_names() -> list[str]:
    return sorted(_registry())
