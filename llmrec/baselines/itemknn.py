"""Item-based k-nearest neighbours: score(j) = sum over history items i of sim(i, j).

The neighbour matrix comes from implicit's ``CosineRecommender``/``BM25Recommender`` (via
``implicit_models.item_similarity``): top-``k`` neighbours per item, the item itself included, as
implicit does. Scoring multiplies the binary history vector by that matrix, so unknown users need
no fold-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llmrec.baselines.base import RUNTIME, Scorer, TrainData, check, history_matrix


@dataclass(frozen=True)
class ItemKNNConfig:
    k: int = 20  # neighbours kept per item
    similarity: str = "cosine"  # "cosine" or "bm25"
    k1: float = 1.2  # BM25 only
    b: float = 0.75  # BM25 only
    num_threads: int = field(default=0, metadata=RUNTIME)  # 0 = the cores this process may use

    def __post_init__(self) -> None:
        check(self.k > 0, f"itemknn: k must be > 0, got {self.k}")
        check(
            self.similarity in ("cosine", "bm25"),
            f"itemknn: similarity must be cosine or bm25, got {self.similarity!r}",
        )
        check(self.k1 >= 0 and 0 <= self.b <= 1, f"itemknn: need k1 >= 0 and 0 <= b <= 1, got {self.k1}, {self.b}")


class ItemKNN(Scorer):
    name = "itemknn"
    Config = ItemKNNConfig

    def _fit(self, train: TrainData) -> None:
        from llmrec.baselines.implicit_models import item_similarity

        cfg = self.config
        self.similarity_ = item_similarity(train.user_items, cfg.similarity, cfg.k, cfg.k1, cfg.b, cfg.num_threads)

    def _score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        return (history_matrix(histories, self.similarity_.shape[0]) @ self.similarity_).toarray()

    def hyperparameters(self) -> dict:
        params = super().hyperparameters()
        if self.config.similarity == "cosine":
            params.pop("k1"), params.pop("b")
        return params
