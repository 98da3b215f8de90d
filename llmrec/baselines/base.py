"""The ``Scorer`` interface every collaborative model implements, and the data it is fitted on.

A scorer maps (user, history) pairs to one score per catalogue item. It serves the evaluation
harness (full ranking) and candidate retrieval for live users, including users the model never saw:
``users[i] == -1`` means "unknown user, fold in from ``histories[i]``".

Implementers write ``_fit`` and ``_score`` and declare a frozen ``Config`` dataclass; the base class
validates arguments, batches users, checks the output and reports hyper-parameters.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, TypeVar

import numpy as np
from scipy import sparse

from llmrec.errors import ConfigError, LlmrecError, ModelError

UNKNOWN_USER = -1
S = TypeVar("S", bound="Scorer")


def history_matrix(histories: Sequence[np.ndarray], n_items: int) -> sparse.csr_matrix:
    """Binary (len(histories), n_items) CSR matrix; a repeated item counts once."""
    lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]) if len(histories) else np.zeros(0)
    data = np.ones(len(indices), dtype=np.float32)
    matrix = sparse.csr_matrix((data, indices.astype(np.int32), indptr), shape=(len(histories), n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


@dataclass(frozen=True)
class ValidationSet:
    """Held-out targets a model may use for early stopping (never the test targets)."""

    users: np.ndarray  # dense user ids
    histories: tuple[np.ndarray, ...]  # model input, also masked when ranking
    targets: tuple[np.ndarray, ...]  # relevant dense items per user
    masked: tuple[np.ndarray, ...] | None = None  # items scored -inf; None = the whole history

    def evaluate(self, score: Callable[[np.ndarray, Sequence[np.ndarray]], np.ndarray], k: int = 10) -> float:
        """NDCG@k of ``score`` (e.g. ``scorer.score``) on this set, with the masked items at -inf."""
        from llmrec.evaluation.metrics import hit_matrix, ranking_metrics, top_k

        scores = np.asarray(score(self.users, self.histories), dtype=np.float32).copy()
        for row, items in enumerate(self.histories if self.masked is None else self.masked):
            scores[row, items] = -np.inf
        hits = hit_matrix(top_k(scores, k), self.targets)
        n_relevant = np.array([len(t) for t in self.targets])
        return ranking_metrics(hits, n_relevant, (k,))[f"ndcg@{k}"]


@dataclass(frozen=True)
class TrainData:
    """What a scorer is fitted on: ordered per-user histories over dense ids, plus a seed.

    ``histories[u]`` may be empty (a user with nothing before a temporal cut-off). ``ratings`` and
    ``timestamps`` are aligned with ``histories`` when known. ``validation`` is a hook for models
    that stop early; the harness sets it when fitting for the validation run only.
    """

    n_users: int
    n_items: int
    histories: tuple[np.ndarray, ...]
    ratings: tuple[np.ndarray, ...] | None = None
    timestamps: tuple[np.ndarray, ...] | None = None
    seed: int = 0
    validation: ValidationSet | None = None

    def __post_init__(self) -> None:
        if self.n_items < 1 or self.n_users < 0:
            raise ConfigError(f"TrainData needs n_items >= 1 and n_users >= 0, got {self.n_items}, {self.n_users}")
        if len(self.histories) != self.n_users:
            raise ConfigError(f"TrainData has {len(self.histories)} histories for n_users={self.n_users}")
        for name in ("ratings", "timestamps"):
            column = getattr(self, name)
            if column is not None and [len(c) for c in column] != [len(h) for h in self.histories]:
                raise ConfigError(f"TrainData.{name} is not aligned with histories")
        if self.n_interactions:
            flat = np.concatenate(self.histories)
            if flat.min() < 0 or flat.max() >= self.n_items:
                raise ConfigError(f"TrainData has item ids outside 0..{self.n_items - 1}")

    @cached_property
    def n_interactions(self) -> int:
        return int(sum(len(h) for h in self.histories))

    @cached_property
    def user_items(self) -> sparse.csr_matrix:
        """Binary (n_users, n_items) CSR matrix of the histories."""
        return history_matrix(self.histories, self.n_items)

    @cached_property
    def item_counts(self) -> np.ndarray:
        """Number of users who interacted with each item."""
        return np.asarray(self.user_items.sum(axis=0)).ravel().astype(np.int64)

    def with_seed(self, seed: int) -> TrainData:
        return dataclasses.replace(self, seed=seed)


@dataclass(frozen=True)
class NoConfig:
    """For scorers without hyper-parameters."""


RUNTIME = {"runtime": True}  # field metadata: a setting that does not change the model (threads, batch size)


def check(condition: bool, message: str) -> None:
    """Config validation helper for ``__post_init__``: raise ConfigError with ``message``."""
    if not condition:
        raise ConfigError(message)


class Scorer(abc.ABC):
    """Scores every catalogue item for a batch of users.

    Subclasses set ``name`` and ``Config`` (a frozen dataclass whose ``__post_init__`` validates its
    values), and implement ``_fit`` and ``_score``.
    """

    name: ClassVar[str] = "scorer"
    Config: ClassVar[type] = NoConfig
    batch_size: ClassVar[int] = 1024

    def __init__(self, **params: Any) -> None:
        fields = {f.name for f in dataclasses.fields(self.Config)}
        unknown = sorted(set(params) - fields)
        if unknown:
            known = ", ".join(sorted(fields)) or "none"
            raise ConfigError(f"{self.name}: unknown hyper-parameter(s) {', '.join(unknown)}; known: {known}")
        try:
            self.config = self.Config(**params)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.name}: {exc}") from exc
        self.n_users: int | None = None
        self.n_items: int | None = None

    # Public API -----------------------------------------------------------------------------
    def fit(self: S, train: TrainData) -> S:
        """Fit on ``train`` and return ``self``."""
        self.n_users, self.n_items = train.n_users, train.n_items  # set first: _fit may score for early stopping
        self._fit(train)
        return self

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """(len(users), n_items) float32 scores; ``users`` are dense ids or -1 for unknown users."""
        if self.n_items is None or self.n_users is None:
            raise ModelError(f"{self.name}: call fit() before score()")
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        if len(users) != len(histories):
            raise LlmrecError(f"{self.name}: {len(users)} users but {len(histories)} histories")
        if len(users) and (users.min() < UNKNOWN_USER or users.max() >= self.n_users):
            raise LlmrecError(f"{self.name}: user ids must be -1 (unknown) or in 0..{self.n_users - 1}")
        histories = [np.asarray(h, dtype=np.int64).reshape(-1) for h in histories]
        for h in histories:
            if len(h) and (h.min() < 0 or h.max() >= self.n_items):
                raise LlmrecError(f"{self.name}: history item ids must be in 0..{self.n_items - 1}")
        out = np.empty((len(users), self.n_items), dtype=np.float32)
        for start in range(0, len(users), self.batch_size):
            stop = start + self.batch_size
            block = np.asarray(self._score(users[start:stop], histories[start:stop]), dtype=np.float32)
            if block.shape != (len(users[start:stop]), self.n_items):
                raise ModelError(f"{self.name}: _score returned shape {block.shape}")
            out[start:stop] = block
        if np.isnan(out).any():
            raise ModelError(f"{self.name}: produced NaN scores; lower the learning rate or raise regularisation")
        return out

    def recommend(
        self, users: np.ndarray, histories: Sequence[np.ndarray], k: int, exclude_history: bool = True
    ) -> np.ndarray:
        """Top-``k`` dense item ids per user (-1 padded), history masked; ties go to the lower id."""
        from llmrec.evaluation.metrics import top_k

        scores = self.score(users, histories)
        if exclude_history:
            for row, history in enumerate(histories):
                scores[row, np.asarray(history, dtype=np.int64)] = -np.inf
        return top_k(scores, k)

    def hyperparameters(self) -> dict[str, Any]:
        """The values that define this model, JSON-serialisable."""
        return {
            f.name: getattr(self.config, f.name)
            for f in dataclasses.fields(self.config)
            if not f.metadata.get("runtime", False)
        }

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({params})"

    # For implementers ------------------------------------------------------------------------
    @abc.abstractmethod
    def _fit(self, train: TrainData) -> None:
        """Learn from ``train``; ``train.seed`` seeds every random choice."""

    @abc.abstractmethod
    def _score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        """Scores for one batch (validated ids); unknown users (-1) must be folded in from the history."""


def fold_in_factors(
    item_factors: np.ndarray,
    histories: Sequence[np.ndarray],
    regularization: float,
    alpha: float = 1.0,
    item_bias: np.ndarray | None = None,
) -> np.ndarray:
    """User factors for histories a factor model never saw: one weighted least-squares step.

    Minimises sum_i c_i (p_i - b_i - v_i.u)^2 + reg |u|^2 with p_i = 1 on the history (confidence
    1 + alpha) and 0 elsewhere (confidence 1) -- the implicit-ALS user update with the item factors
    held fixed. Works for any dot-product model (BPR included, with its item bias).
    """
    item_factors = np.asarray(item_factors, dtype=np.float64)
    n_items, dim = item_factors.shape
    bias = np.zeros(n_items) if item_bias is None else np.asarray(item_bias, dtype=np.float64)
    gram = item_factors.T @ item_factors + regularization * np.eye(dim)
    base_rhs = -item_factors.T @ bias
    out = np.zeros((len(histories), dim), dtype=np.float64)
    for row, history in enumerate(histories):
        items = np.unique(np.asarray(history, dtype=np.int64))
        if not len(items):
            continue
        factors = item_factors[items]
        lhs = gram + alpha * factors.T @ factors
        rhs = base_rhs + factors.sum(axis=0) + alpha * factors.T @ (1.0 - bias[items])
        out[row] = np.linalg.solve(lhs, rhs)
    return out.astype(np.float32)
