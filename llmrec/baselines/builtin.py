"""The built-in scorers: one explicit list of (name, factory, search grid, label), registered by one call.

``llmrec.baselines.registry`` calls ``register_builtin_scorers`` the first time the registry is read;
nothing is registered as a side effect of importing a module. Factories import their model (and torch or
implicit) only when called, so listing or looking up names stays cheap. Neural models carry no search grid:
each stops early on its own validation hold-out, so the harness fits it once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llmrec.baselines.base import Scorer


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


def _ncf(**params: Any) -> Scorer:
    from llmrec.baselines.ncf import NCF

    return NCF(**params)


def _sasrec(**params: Any) -> Scorer:
    from llmrec.baselines.sasrec import SASRec

    return SASRec(**params)


def _lrurec(**params: Any) -> Scorer:
    from llmrec.baselines.lrurec import LRURec

    return LRURec(**params)


def _bert4rec(**params: Any) -> Scorer:
    from llmrec.baselines.bert4rec import BERT4Rec

    return BERT4Rec(**params)


def _lightgcn(**params: Any) -> Scorer:
    from llmrec.baselines.lightgcn import LightGCN

    return LightGCN(**params)


def _ensemble(**params: Any) -> Scorer:
    from llmrec.baselines.ensemble import Ensemble

    return Ensemble(**params)


def _cfgan(**params: Any) -> Scorer:
    from llmrec.baselines.cfgan import CFGAN

    return CFGAN(**params)


# name, factory, search grid (validation NDCG@10), label, fixed defaults
BUILTIN_SCORERS: tuple[tuple[str, Callable[..., Scorer], Mapping[str, Sequence[Any]], str, Mapping[str, Any]], ...] = (
    ("pop", _pop, {}, "MostPop", {}),
    ("itemknn", _itemknn, {"k": [5, 10, 20, 50, 100, 200]}, "ItemKNN cosine (implicit)", {"similarity": "cosine"}),
    ("itemknn-bm25", _itemknn, {"k": [20, 100, 200], "b": [0.5, 0.75, 1.0]}, "ItemKNN BM25 (implicit)",
     {"similarity": "bm25"}),
    ("ease", _ease, {"l2": [10.0, 50.0, 100.0, 300.0, 500.0, 1000.0]}, "EASE", {}),
    ("bpr", _bpr, {"learning_rate": [0.002, 0.005, 0.01]}, "BPR-MF (llmrec, torch)", {}),
    ("implicit-als", _implicit_als, {"factors": [64, 128, 256], "regularization": [0.1, 1.0], "alpha": [0.5, 1.0]},
     "ALS (implicit)", {}),
    ("implicit-bpr", _implicit_bpr, {"factors": [64, 128], "learning_rate": [0.01, 0.05], "regularization": [0.01]},
     "BPR (implicit)", {}),
    ("ncf", _ncf, {}, "NCF / NeuMF (llmrec, torch)", {}),
    ("sasrec", _sasrec, {}, "SASRec, full-softmax CE (llmrec, torch)", {}),
    ("lrurec", _lrurec, {}, "LRURec, linear recurrent units (llmrec, torch)", {}),
    ("bert4rec", _bert4rec, {}, "BERT4Rec, bidirectional cloze (llmrec, torch)", {}),
    ("lightgcn", _lightgcn, {}, "LightGCN (llmrec, torch)", {}),
    ("cfgan", _cfgan, {}, "CFGAN (llmrec, torch)", {}),
    ("ensemble", _ensemble, {}, "Weighted z-score sum of retrievers (default LRURec + 0.3 SASRec + 0.1 EASE)", {}),
    # the same with each network fitted from five seeds and averaged: five times the training, a steadier order
    ("ensemble5", _ensemble, {}, "The ensemble with LRURec and SASRec each averaged over 5 seeds", {"seeds": 5}),
)  # fmt: skip
NEURAL = frozenset({"ncf", "sasrec", "lrurec", "bert4rec", "lightgcn", "cfgan"})


def register_builtin_scorers(register: Callable[..., Any]) -> None:
    """Register every built-in model through ``register`` (``llmrec.baselines.registry.register_scorer``)."""
    for name, factory, grid, label, defaults in BUILTIN_SCORERS:
        register(name, factory, grid, label=label, defaults=defaults)
