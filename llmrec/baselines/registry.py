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


def register_scorer(
    name: str,
    factory: Callable[..., Scorer],
    search_space: SearchSpace | None = None,
    label: str = "",
    defaults: Mapping[str, Any] | None = None,
    replace: bool = False,
) -> ScorerSpec:
    """Add a scorer under ``name``; re-registering a name needs ``replace=True``."""
    if name in _REGISTRY and not replace:
        raise ConfigError(f"scorer {name!r} is already registered; pass replace=True to override it")
    spec = ScorerSpec(
        name,
        factory,
        MappingProxyType(dict(search_space or {})),
        label or name,
        MappingProxyType(dict(defaults or {})),
    )
    _REGISTRY[name] = spec
    return spec


def scorer_spec(name: str) -> ScorerSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}") from None


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
    folder = Path(folder)
    if (folder / "state.json").is_file():
        log.info("%s: reusing the model trained in %s", name, folder)
    else:
        log.warning("%s: training once (minutes), then reused from %s", name, folder)
    return get_scorer(name, **params, checkpoint_dir=str(folder), resume=True)


@dataclass
class _NoConfig:
    """Stands in for the config of scorers that have none (no checkpoints)."""


def scorer_names() -> list[str]:
    return sorted(_REGISTRY)


# Built-in models ------------------------------------------------------------------------------
def _pop(**params: Any) -> Scorer:
    from llmrec.baselines.pop import MostPop

    return MostPop(**params)


def _itemknn(**params: Any) -> Scorer:
    from llmrec.baselines.itemknn import ItemKNN

    return ItemKNN(**params)


def _ease(**params: Any) -> Scorer:
    from llmrec.baselines.ease import EASE

    return EASE(**params)


def _bpr(**params: Any) -> Scorer:
    from llmrec.baselines.bpr import BPR

    return BPR(**params)


def _implicit_als(**params: Any) -> Scorer:
    from llmrec.baselines.implicit_models import ImplicitALS

    return ImplicitALS(**params)


def _implicit_bpr(**params: Any) -> Scorer:
    from llmrec.baselines.implicit_models import ImplicitBPR

    return ImplicitBPR(**params)


register_scorer("pop", _pop, label="MostPop")
register_scorer(
    "itemknn",
    _itemknn,
    {"k": [5, 10, 20, 50, 100, 200]},
    label="ItemKNN cosine (implicit)",
    defaults={"similarity": "cosine"},
)
register_scorer(
    "itemknn-bm25",
    _itemknn,
    {"k": [20, 100, 200], "b": [0.5, 0.75, 1.0]},
    label="ItemKNN BM25 (implicit)",
    defaults={"similarity": "bm25"},
)
register_scorer("ease", _ease, {"l2": [10.0, 50.0, 100.0, 300.0, 500.0, 1000.0]}, label="EASE")
register_scorer(
    "bpr",
    _bpr,
    {"learning_rate": [0.002, 0.005, 0.01]},
    label="BPR-MF (llmrec, torch)",
)
register_scorer(
    "implicit-als",
    _implicit_als,
    {"factors": [64, 128, 256], "regularization": [0.1, 1.0], "alpha": [0.5, 1.0]},
    label="ALS (implicit)",
)
register_scorer(
    "implicit-bpr",
    _implicit_bpr,
    {"factors": [64, 128], "learning_rate": [0.01, 0.05], "regularization": [0.01]},
    label="BPR (implicit)",
)

# Neural models: registered by their own module (cheap to import; torch loads only when one is built).
from llmrec.baselines import neural as _neural  # noqa: E402,F401
