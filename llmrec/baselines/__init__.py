"""Classic collaborative baselines behind one ``Scorer`` interface, and their registry."""

from llmrec.baselines.base import UNKNOWN_USER, Scorer, TrainData, ValidationSet, fold_in_factors, history_matrix
from llmrec.baselines.registry import (
    ScorerSpec,
    get_checkpointed_scorer,
    get_scorer,
    register_scorer,
    scorer_names,
    scorer_spec,
)

__all__ = [
    "UNKNOWN_USER",
    "Scorer",
    "ScorerSpec",
    "TrainData",
    "ValidationSet",
    "fold_in_factors",
    "get_checkpointed_scorer",
    "get_scorer",
    "history_matrix",
    "register_scorer",
    "scorer_names",
    "scorer_spec",
]
