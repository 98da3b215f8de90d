"""Registers the neural recommenders (NCF, SASRec, LightGCN, CFGAN) with the scorer registry.

Importing this module is cheap: each factory imports its model (and torch) only when called.
The entries carry no search grid -- each model stops early on its own validation hold-out, so the
harness fits it once; pass hyper-parameters explicitly to try others.
"""

from __future__ import annotations

from typing import Any

from llmrec.baselines.base import Scorer
from llmrec.baselines.registry import register_scorer, scorer_names


def _ncf(**params: Any) -> Scorer:
    from llmrec.baselines.ncf import NCF

    return NCF(**params)


def _sasrec(**params: Any) -> Scorer:
    from llmrec.baselines.sasrec import SASRec

    return SASRec(**params)


def _lightgcn(**params: Any) -> Scorer:
    from llmrec.baselines.lightgcn import LightGCN

    return LightGCN(**params)


def _cfgan(**params: Any) -> Scorer:
    from llmrec.baselines.cfgan import CFGAN

    return CFGAN(**params)


NEURAL_SCORERS = {
    "ncf": (_ncf, "NCF / NeuMF (llmrec, torch)"),
    "sasrec": (_sasrec, "SASRec, full-softmax CE (llmrec, torch)"),
    "lightgcn": (_lightgcn, "LightGCN (llmrec, torch)"),
    "cfgan": (_cfgan, "CFGAN (llmrec, torch)"),
}


def register_neural_scorers(replace: bool = False) -> None:
    """Add the four models to the registry (names already registered are left alone unless ``replace``)."""
    known = set(scorer_names())
    for name, (factory, label) in NEURAL_SCORERS.items():
        if replace or name not in known:
            register_scorer(name, factory, label=label, replace=replace)


register_neural_scorers()
