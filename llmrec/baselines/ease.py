"""EASE (Steck, 2019): a closed-form item-item linear model with a zero diagonal.

B = I - P diagMat(1 / diag(P)), with P = (X^T X + lambda I)^-1; score = x_history @ B. The history
vector alone defines a user, so unknown users need no fold-in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmrec.baselines.base import Scorer, TrainData, check, history_matrix


@dataclass(frozen=True)
class EASEConfig:
    l2: float = 500.0  # lambda, the L2 penalty on B

    def __post_init__(self) -> None:
        check(self.l2 > 0, f"ease: l2 must be > 0, got {self.l2}")


class EASE(Scorer):
    name = "ease"
    Config = EASEConfig

    def _fit(self, train: TrainData) -> None:
        x = train.user_items
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.config.l2
        precision = np.linalg.inv(gram)
        weights = precision / (-np.diag(precision))
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights_ = weights.astype(np.float32)

    def _score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        return np.asarray(history_matrix(histories, self.weights_.shape[0]) @ self.weights_)
