"""Models from the ``implicit`` library -- the only module that imports it.

``implicit`` (benfred/implicit) is a well-kept library with fast multi-threaded C++/Cython
kernels; we use its ItemKNN similarity builders (cosine, BM25), AlternatingLeastSquares and
BayesianPersonalizedRanking rather than re-implementing them. Scores are computed here with numpy
from the fitted factors/similarities so that every model shares the harness's masking and tie
policy. BLAS is limited to one thread while implicit runs its own thread pool (implicit warns
otherwise), and implicit BPR defaults to one thread: its multi-threaded SGD is hogwild, so only a
single thread gives the same factors twice with the same seed.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import sparse

from llmrec.baselines.base import RUNTIME, UNKNOWN_USER, Scorer, TrainData, check, history_matrix
from llmrec.baselines.bpr import fold_in_bpr


def default_threads() -> int:
    """Cores this process may use (implicit's 0 = "all cores" ignores CPU affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def _single_threaded_blas():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        yield


def item_similarity(
    user_items: sparse.csr_matrix,
    kind: Literal["cosine", "bm25"],
    k: int,
    k1: float = 1.2,
    b: float = 0.75,
    num_threads: int = 0,
) -> sparse.csr_matrix:
    """implicit's item-item top-``k`` neighbour matrix (each item counts itself among its ``k``)."""
    from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
    from implicit.utils import ParameterWarning

    threads = num_threads or default_threads()
    model = CosineRecommender(K=k, num_threads=threads) if kind == "cosine" else BM25Recommender(k, k1, b, threads)
    with warnings.catch_warnings():  # implicit re-weights to COO itself, then warns that it got COO
        warnings.simplefilter("ignore", ParameterWarning)
        model.fit(user_items.astype(np.float64), show_progress=False)
    return model.similarity.astype(np.float32).tocsr()


@dataclass(frozen=True)
class ALSConfig:
    factors: int = 128
    regularization: float = 0.1
    alpha: float = 1.0  # confidence weight of observed interactions (implicit's alpha)
    iterations: int = 20
    num_threads: int = field(default=0, metadata=RUNTIME)  # 0 = the cores this process may use

    def __post_init__(self) -> None:
        check(self.factors > 0, f"implicit-als: factors must be > 0, got {self.factors}")
        check(self.regularization >= 0, f"implicit-als: regularization must be >= 0, got {self.regularization}")
        check(self.alpha > 0, f"implicit-als: alpha must be > 0, got {self.alpha}")
        check(self.iterations > 0, f"implicit-als: iterations must be > 0, got {self.iterations}")


class ImplicitALS(Scorer):
    """implicit's AlternatingLeastSquares (Hu, Koren & Volinsky 2008), float32, CPU.

    Known users use their fitted factor; unknown users are folded in with implicit's own
    ``recalculate_user`` (the exact ALS user update, Cholesky solve).
    """

    name = "implicit-als"
    Config = ALSConfig

    def _fit(self, train: TrainData) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        cfg = self.config
        with _single_threaded_blas():
            self.model_ = AlternatingLeastSquares(
                factors=cfg.factors,
                regularization=cfg.regularization,
                alpha=cfg.alpha,
                iterations=cfg.iterations,
                dtype=np.float32,
                num_threads=cfg.num_threads or default_threads(),
                random_state=train.seed,
            )
            self.model_.fit(train.user_items, show_progress=False)

    def _score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        model = self.model_
        factors = np.zeros((len(users), model.item_factors.shape[1]), dtype=np.float32)
        known = users != UNKNOWN_USER
        factors[known] = model.user_factors[users[known]]
        if (~known).any():
            unknown = np.flatnonzero(~known)
            matrix = history_matrix([histories[i] for i in unknown], model.item_factors.shape[0])
            with _single_threaded_blas():
                factors[unknown] = model.recalculate_user(np.arange(len(unknown)), matrix)
        return factors @ model.item_factors.T


@dataclass(frozen=True)
class ImplicitBPRConfig:
    factors: int = 128
    learning_rate: float = 0.01
    regularization: float = 0.01
    iterations: int = 100
    num_threads: int = field(default=1, metadata=RUNTIME)  # >1 is faster but hogwild SGD is not reproducible
    fold_in_regularization: float = 0.01  # L2 on a folded-in user vector

    def __post_init__(self) -> None:
        check(self.factors > 0, f"implicit-bpr: factors must be > 0, got {self.factors}")
        check(self.learning_rate > 0, f"implicit-bpr: learning_rate must be > 0, got {self.learning_rate}")
        check(self.regularization >= 0, f"implicit-bpr: regularization must be >= 0, got {self.regularization}")
        check(self.iterations > 0, f"implicit-bpr: iterations must be > 0, got {self.iterations}")
        check(self.num_threads >= 0, f"implicit-bpr: num_threads must be >= 0, got {self.num_threads}")


class ImplicitBPR(Scorer):
    """implicit's BayesianPersonalizedRanking (Rendle et al. 2009), float32, CPU.

    implicit stores the item bias as the last item-factor column (user column fixed at 1). Unknown
    users are folded in by minimising the BPR loss over the user vector (``bpr.fold_in_bpr``),
    since implicit's BPR has no ``recalculate_user``.
    """

    name = "implicit-bpr"
    Config = ImplicitBPRConfig

    def _fit(self, train: TrainData) -> None:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        cfg = self.config
        with _single_threaded_blas():
            self.model_ = BayesianPersonalizedRanking(
                factors=cfg.factors,
                learning_rate=cfg.learning_rate,
                regularization=cfg.regularization,
                iterations=cfg.iterations,
                dtype=np.float32,
                num_threads=cfg.num_threads or default_threads(),
                random_state=train.seed,
            )
            self.model_.fit(train.user_items, show_progress=False)

    def _score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        item_factors = self.model_.item_factors
        factors = np.zeros((len(users), item_factors.shape[1]), dtype=np.float32)
        known = users != UNKNOWN_USER
        factors[known] = self.model_.user_factors[users[known]]
        if (~known).any():
            unknown = np.flatnonzero(~known)
            factors[unknown, :-1] = fold_in_bpr(
                item_factors[:, :-1],
                item_factors[:, -1],
                [histories[i] for i in unknown],
                self.config.fold_in_regularization,
            )
            factors[unknown, -1] = 1.0
        return factors @ item_factors.T
