"""A quality-and-familiarity prior for lists built from little evidence.

A request like "a comedy from the 2000s" or a single liked title says little; ordered by text
similarity alone, such a list is led by whatever matches the words best, often films almost nobody
rated (a stand-up special with two ratings as the first comedy). People expect films that are known
to be good and that they may have heard of. ``QualityPrior`` scores every rated item by

- quality: the Bayesian average rating, ``(C * m + sum of ratings) / (C + n)``, where ``m`` is the
  mean of all ratings and ``C`` the number of ratings at which an item's own mean counts as much as
  ``m`` (an item with two 5-star ratings stays near the global mean);
- familiarity: ``log(1 + n) / log(1 + max n)``, how many people rated it;

and ``prior = quality_share * quality + (1 - quality_share) * familiarity``, both in [0, 1]. Items
without ratings (a catalogue with no ratings, or films outside the rated one) get 0: the prior then
changes nothing among them.

``prior_weight(profile)`` says how much the prior counts: ``weight / (1 + liked / half)`` where
``liked`` counts the profile's liked history items, so it fades as evidence grows. ``weight`` applies
when the profile's constraints already say what is wanted (genres or years: the list holds only such
films, so the order within them is the prior's to set); a request in words alone ("a zombie movie")
gets the smaller ``free_weight`` and pool, because there the words are the only relevance. ``blend`` mixes it
with min-max scaled relevance; ``PriorRetriever`` applies that to any retriever's deeper pool and keeps
the profile's hard constraints (genres, years) when the profile carries them. The pipeline
(``retrieval.quality_prior``) wraps its retriever in one for cold-start profiles (``is_cold_start``: at
most ``max_liked`` liked items); beyond that the history decides the order. Written here: a Bayesian
average is three lines and no dependency does exactly this blend.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from llmrec.errors import ConfigError
from llmrec.profile import liked_weights
from llmrec.retrieval import Retriever, top_candidates
from llmrec.types import Candidate, Item, UserProfile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PriorConfig:
    """Constants of the prior and the blend; defaults chosen on ml-latest-small validation items
    (``benchmarks/coldstart.py --tune``)."""

    strength: float = 5.0  # C: ratings at which an item's own mean weighs as much as the global mean
    quality_share: float = 0.25  # familiarity weighs 0.75: "known" matters more than a slightly higher mean
    weight: float = 0.9  # the prior's share with nothing liked when genres or years say what is wanted
    free_weight: float = 0.5  # ... and when only words do
    half: float = 0.25  # liked items at which that share halves: a fifth with one liked title
    pool_factor: int = 5  # the inner retriever is asked for pool_factor * k candidates ...
    min_pool: int = 1000  # ... and at least this many, so well-known matches are in the pool ...
    free_pool: int = 200  # ... or this many for words alone
    max_liked: int = 5  # the pipeline applies the prior up to this many liked items (then the history speaks)

    def __post_init__(self) -> None:
        if self.strength < 0 or self.half <= 0:
            raise ConfigError(f"prior strength must be >= 0 and half > 0, got {self.strength} and {self.half}")
        for name in ("quality_share", "weight", "free_weight"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"prior {name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_liked < 0:
            raise ConfigError(f"prior max_liked must be >= 0, got {self.max_liked}")
        if self.pool_factor < 1 or self.min_pool < 1 or self.free_pool < 1:
            raise ConfigError("prior pool_factor, min_pool and free_pool must be at least 1")


class QualityPrior:
    """Per-item prior in [0, 1] from rating counts and means; see the module docstring."""

    def __init__(self, counts: Mapping[str, int], means: Mapping[str, float], config: PriorConfig | None = None,
                 global_mean: float | None = None) -> None:  # fmt: skip
        self.config = config or PriorConfig()
        self.counts = dict(counts)
        self.means = {i: m for i, m in means.items() if m == m}  # NaN means: items rated without a value
        total = sum(self.counts.get(i, 0) for i in self.means)
        if global_mean is None:
            global_mean = sum(self.means[i] * self.counts.get(i, 0) for i in self.means) / total if total else 0.0
        self.global_mean = global_mean
        c, n = self.config.strength, self.counts
        bayes = {i: (c * global_mean + self.means[i] * n.get(i, 0)) / (c + n.get(i, 0)) for i in self.means}
        low, high = (min(bayes.values()), max(bayes.values())) if bayes else (0.0, 0.0)
        self.quality = {i: (b - low) / (high - low) if high > low else 0.0 for i, b in bayes.items()}
        self.bayesian_average = bayes
        top = max(self.counts.values(), default=0)
        self.familiarity = {i: float(np.log1p(n) / np.log1p(top)) if top > 0 else 0.0 for i, n in self.counts.items()}
        share = self.config.quality_share
        self.values = {i: share * self.quality.get(i, 0.0) + (1 - share) * self.familiarity.get(i, 0.0)
                       for i in set(self.familiarity) | set(self.quality)}  # fmt: skip
        if not self.values:
            log.info("no ratings or counts: the quality prior is 0 everywhere and changes no order")

    @classmethod
    def from_interactions(cls, interactions: object, config: PriorConfig | None = None) -> QualityPrior:
        """From a data set's ``Interactions`` (``item_ids``, ``ratings``): counts, and means where rated."""
        items = np.asarray(interactions.item_ids, dtype=object)  # type: ignore[attr-defined]
        ratings = np.asarray(interactions.ratings, dtype=np.float64)  # type: ignore[attr-defined]
        if items.size == 0:
            return cls({}, {}, config)
        ids, inverse, counts = np.unique(items, return_inverse=True, return_counts=True)
        rated = ~np.isnan(ratings)
        sums = np.bincount(inverse[rated], weights=ratings[rated], minlength=len(ids))
        n_rated = np.bincount(inverse[rated], minlength=len(ids))
        means = {str(i): float(s / n) for i, s, n in zip(ids, sums, n_rated) if n > 0}
        return cls({str(i): int(c) for i, c in zip(ids, counts)}, means, config)

    def value(self, item_id: str) -> float:
        return self.values.get(item_id, 0.0)


def states_what_is_wanted(profile: UserProfile) -> bool:
    """Whether the profile's constraints name wanted genres or years (avoiding something says less)."""
    limits = getattr(profile, "constraints", None)
    return bool(limits and (getattr(limits, "wanted_genres", ()) or getattr(limits, "year_min", None)
                            or getattr(limits, "year_max", None)))  # fmt: skip


def prior_weight(profile: UserProfile, config: PriorConfig) -> float:
    """The prior's share for this profile: ``weight`` (or ``free_weight`` when only words say what is wanted)
    with nothing liked, halving every ``half`` liked items."""
    base = config.weight if states_what_is_wanted(profile) else config.free_weight
    return base / (1.0 + len(liked_weights(profile)) / config.half)


def is_cold_start(profile: UserProfile, config: PriorConfig) -> bool:
    """Whether a list for ``profile`` is built from little evidence (a request in words, a genre, a few liked
    titles: at most ``max_liked``), where the pipeline lets the prior order it."""
    return len(liked_weights(profile)) <= config.max_liked


def blend(relevance: Mapping[str, float], prior: QualityPrior, weight: float) -> dict[str, float]:
    """``(1 - weight) * relevance scaled to [0, 1] over these items + weight * prior``."""
    if not relevance:
        return {}
    values = np.array(list(relevance.values()), dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.ones_like(values)
    return {i: float((1 - weight) * s + weight * prior.value(i)) for i, s in zip(relevance, scaled)}


class PriorRetriever:
    """Reorders a retriever's deeper pool by relevance blended with the prior (more when evidence is thin)."""

    def __init__(self, inner: Retriever, prior: QualityPrior, items: Mapping[str, Item] | None = None,
                 config: PriorConfig | None = None) -> None:  # fmt: skip
        self.inner = inner
        self.prior = prior
        self.items = items
        self.config = config or prior.config
        self.name = inner.name

    def retrieve(self, profile: UserProfile, k: int) -> list[Candidate]:
        if k <= 0:
            return []
        weight = prior_weight(profile, self.config)
        least = self.config.min_pool if states_what_is_wanted(profile) else self.config.free_pool
        depth = max(k * self.config.pool_factor, least) if weight > 0 else k
        pool = self.inner.retrieve(profile, depth)
        constraints = getattr(profile, "constraints", None)
        if constraints and self.items is not None:  # the order *within* what the person asked for
            pool = [c for c in pool if c.item_id in self.items and constraints.allows(self.items[c.item_id])]
        if weight <= 0 or not pool:
            return pool[:k]
        by_id = {c.item_id: c for c in pool}
        scores = blend({c.item_id: c.score for c in pool}, self.prior, weight)
        out = []
        for item_id, score in top_candidates(scores, k, banned=profile.seen):
            cand = by_id[item_id]
            stages = (*cand.evidence.stage_scores, ("prior", self.prior.value(item_id)))
            out.append(replace(cand, score=score, evidence=replace(cand.evidence, stage_scores=stages)))
        return out
