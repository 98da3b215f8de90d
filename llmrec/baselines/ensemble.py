"""One candidate list from several retrievers: a weighted sum of registry scorers' per-user z-scores.

Each member is fitted on the same data; for every user its scores over the catalogue are standardised (mean 0,
standard deviation 1 over the finite scores) so that scales as different as SASRec's logits and EASE's
reconstructions add up, and the weighted sum is the ensemble's score. Weights are chosen on the validation
item (``benchmarks/ranking.py ensemble``). Members that train with checkpoints (SASRec) keep them in a
sub-folder of the ensemble's ``checkpoint_dir`` each; a copy another process is training into (its lock held) is
fitted after the others, so two processes fitting one ensemble share the training.

``seeds`` > 1 fits every neural member that many times from different seeds (the fit seed plus 0, 1, ...) and
averages the copies' z-scores before weighting: two fits of one network on one CPU already differ by about a
standard error of the test figures (docs/benchmarks/ranking.md section 11), and the average of several is both
steadier and, as a rule for networks, better than one of them. Deterministic members (EASE) are fitted once.
"""

from __future__ import annotations

import dataclasses
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
    seeds: int = 1  # fits of each neural member, averaged (see the module doc)
    checkpoint_dir: str | None = field(default=None, metadata=RUNTIME)
    resume: bool = field(default=False, metadata=RUNTIME)

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple(self.members))
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        check(len(self.members) >= 1, "ensemble: give at least one member")
        check(len(self.members) == len(self.weights), f"ensemble: {len(self.members)} members but "
              f"{len(self.weights)} weights")  # fmt: skip
        check(not any(m.startswith("ensemble") for m in self.members), "ensemble: an ensemble cannot contain itself")
        check(all(w >= 0 for w in self.weights) and any(self.weights), "ensemble: weights must be >= 0, one > 0")
        check(self.seeds >= 1, f"ensemble: seeds must be >= 1, got {self.seeds}")


def standardise(scores: np.ndarray) -> np.ndarray:
    """Per-row z-scores over the finite entries; non-finite entries become -inf."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    values = np.where(finite, scores, 0.0)
    count = np.maximum(finite.sum(axis=1, keepdims=True), 1)
    mean = values.sum(axis=1, keepdims=True) / count
    var = (np.where(finite, (values - mean) ** 2, 0.0)).sum(axis=1, keepdims=True) / count
    return np.where(finite, (values - mean) / np.maximum(np.sqrt(var), 1e-9), -np.inf)


def seed_average(z_scores: list[np.ndarray]) -> np.ndarray:
    """One member's z-scores from its seeded copies' z-scores: the single copy's, or their mean standardised again."""
    return z_scores[0] if len(z_scores) == 1 else standardise(np.mean(z_scores, axis=0))


def _averaged(copies: list[Scorer], users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
    """One member's z-scores: its single fit's, or its seeded copies' average, standardised again."""
    return seed_average([standardise(c.score(users, histories)) for c in copies])


def _training_elsewhere(scorer: Scorer) -> bool:
    folder = getattr(getattr(scorer, "config", None), "checkpoint_dir", None)
    if not folder:
        return False
    from pathlib import Path

    from llmrec.baselines.training import training_elsewhere

    return training_elsewhere(Path(folder))


class Ensemble(Scorer):
    name = "ensemble"
    Config = EnsembleConfig

    def _fit(self, train: TrainData) -> None:
        from llmrec.baselines.builtin import NEURAL
        from llmrec.baselines.registry import get_checkpointed_scorer, get_scorer

        cfg = self.config
        jobs: list[tuple[int, Scorer, TrainData]] = []  # (member, unfitted copy, its fit data)
        for m, member in enumerate(cfg.members):
            for copy in range(cfg.seeds if member in NEURAL else 1):
                # copy 0 is the plain fit (its folder and seed as before seeds existed), copy k the fit seed + k
                data = dataclasses.replace(train, seed=train.seed + copy) if copy else train
                if cfg.checkpoint_dir:
                    folder = f"{cfg.checkpoint_dir}/{member}" + (f"-seed{copy}" if copy else "")
                    jobs.append((m, get_checkpointed_scorer(member, folder), data))
                else:
                    jobs.append((m, get_scorer(member), data))
        # Next, always the first copy no other process is training into (two evaluations sharing a cache): the two
        # share the work, and a copy the other finished loads. When every copy left is busy, wait for the first.
        pending, fitted = list(range(len(jobs))), {}
        while pending:
            k = next((k for k in pending if not _training_elsewhere(jobs[k][1])), pending[0])
            pending.remove(k)
            fitted[k] = jobs[k][1].fit(jobs[k][2])
        self.members_: list[list[Scorer]] = [[fitted[k] for k, job in enumerate(jobs) if job[0] == m]
                                             for m in range(len(cfg.members))]  # fmt: skip

    def member_scores(self, users: np.ndarray, histories: list[np.ndarray]) -> list[np.ndarray]:
        """Each member's per-user z-scores (its copies' average when ``seeds`` > 1), in ``members`` order."""
        return [_averaged(copies, users, histories) for copies in self.members_]

    def _score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        total: Any = 0.0
        for weight, copies in zip(self.config.weights, self.members_):
            if weight:  # a member weighted 0 is not scored at all
                total = total + weight * _averaged(copies, users, histories)
        return np.asarray(total, dtype=np.float32)

    def hyperparameters(self) -> dict[str, Any]:
        params = super().hyperparameters()
        from llmrec.baselines.registry import get_scorer

        if params["seeds"] == 1:  # one fit per member: the settings as recorded before ``seeds`` existed
            del params["seeds"]

        params["members"], params["weights"] = list(self.config.members), list(self.config.weights)
        # the members' own settings define the ensemble too (a fusion card fitted over it checks them)
        params["member_hyperparameters"] = {m: get_scorer(m).hyperparameters() for m in self.config.members}
        return params
