"""One candidate list from several retrievers: a weighted sum of registry scorers' per-user z-scores.

Each member is fitted on the same data; for every user its scores over the catalogue are standardised (mean 0,
standard deviation 1 over the finite scores) so that scales as different as SASRec's logits and EASE's
reconstructions add up, and the weighted sum is the ensemble's score. Weights are chosen on the validation
item (``benchmarks/ranking.py ensemble``). Members that train with checkpoints (SASRec) keep them in a
sub-folder of the ensemble's ``checkpoint_dir`` each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmrec.baselines.base import RUNTIME, Scorer, TrainData, check


@dataclass(frozen=True)
class EnsembleConfig:
    members: tuple[str, ...] = ("lrurec", "sasrec", "ease")
    # chosen on the validation item of ml-latest-small with the members at their defaults (issue 16: Recall@20,
    # then NDCG@10, over 0-1): benchmarks/ranking.py ensemble --variants lrurec-d5,sasrec,ease-default
    weights: tuple[float, ...] = (1.0, 0.3, 0.1)
    checkpoint_dir: str | None = field(default=None, metadata=RUNTIME)
    resume: bool = field(default=False, metadata=RUNTIME)

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple(self.members))
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        check(len(self.members) >= 1, "ensemble: give at least one member")
        check(len(self.members) == len(self.weights), f"ensemble: {len(self.members)} members but "
              f"{len(self.weights)} weights")  # fmt: skip
        check("ensemble" not in self.members, "ensemble: an ensemble cannot contain itself")
        check(all(w >= 0 for w in self.weights) and any(self.weights), "ensemble: weights must be >= 0, one > 0")


def standardise(scores: np.ndarray) -> np.ndarray:
    """Per-row z-scores over the finite entries; non-finite entries become -inf."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    values = np.where(finite, scores, 0.0)
    count = np.maximum(finite.sum(axis=1, keepdims=True), 1)
    mean = values.sum(axis=1, keepdims=True) / count
    var = (np.where(finite, (values - mean) ** 2, 0.0)).sum(axis=1, keepdims=True) / count
    return np.where(finite, (values - mean) / np.maximum(np.sqrt(var), 1e-9), -np.inf)


class Ensemble(Scorer):
    name = "ensemble"
    Config = EnsembleConfig

    def _fit(self, train: TrainData) -> None:
        from llmrec.baselines.registry import get_checkpointed_scorer, get_scorer

        cfg = self.config
        self.members_: list[Scorer] = []
        for member in cfg.members:
            if cfg.checkpoint_dir:
                scorer = get_checkpointed_scorer(member, f"{cfg.checkpoint_dir}/{member}")
            else:
                scorer = get_scorer(member)
            self.members_.append(scorer.fit(train))

    def _score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        total: Any = 0.0
        for weight, member in zip(self.config.weights, self.members_):
            if weight:
                total = total + weight * standardise(member.score(users, histories))
        return np.asarray(total, dtype=np.float32)

    def hyperparameters(self) -> dict[str, Any]:
        params = super().hyperparameters()
        from llmrec.baselines.registry import get_scorer

        params["members"], params["weights"] = list(self.config.members), list(self.config.weights)
        # the members' own settings define the ensemble too (a fusion card fitted over it checks them)
        params["member_hyperparameters"] = {m: get_scorer(m).hyperparameters() for m in self.config.members}
        return params
