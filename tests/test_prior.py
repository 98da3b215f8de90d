"""The quality/familiarity prior: Bayesian average by hand, the blend, how it fades with evidence, no ratings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from llmrec.data.dataset import Interactions
from llmrec.errors import ConfigError
from llmrec.retrieval.prior import PriorConfig, PriorRetriever, QualityPrior, blend, prior_weight
from llmrec.types import Candidate, Evidence, HistoryEntry, Item, UserProfile


def _interactions(rows: list[tuple[str, str, float | None]]) -> Interactions:
    users, items, ratings = zip(*rows)
    return Interactions.from_columns(users, items, [np.nan if r is None else r for r in ratings], range(len(rows)))


# "special": two 5-star ratings; "classic": 8 ratings of 4.5; "dud": 4 ratings of 2.
ROWS = [(f"u{n}", "special", 5.0) for n in range(2)] + [(f"u{n}", "classic", 4.5) for n in range(8)] + [
    (f"u{n}", "dud", 2.0) for n in range(4)]  # fmt: skip


def test_bayesian_average_by_hand():
    prior = QualityPrior.from_interactions(_interactions(ROWS), PriorConfig(strength=4.0))
    m = (2 * 5.0 + 8 * 4.5 + 4 * 2.0) / 14  # 3.857
    assert prior.global_mean == pytest.approx(m)
    assert prior.bayesian_average["special"] == pytest.approx((4 * m + 10.0) / 6)  # 4.238: pulled to the mean
    assert prior.bayesian_average["classic"] == pytest.approx((4 * m + 36.0) / 12)  # 4.286: earned
    assert prior.quality["classic"] == 1.0 and prior.quality["dud"] == 0.0
    assert prior.familiarity["classic"] == 1.0 and prior.familiarity["special"] == pytest.approx(np.log(3) / np.log(9))
    assert prior.value("classic") > prior.value("special") > prior.value("dud") > prior.value("never rated") == 0.0


def test_a_two_rating_special_never_leads_a_list_from_little_evidence():
    prior = QualityPrior.from_interactions(_interactions(ROWS))
    relevance = {"special": 0.62, "classic": 0.60, "dud": 0.50}  # text similarity: the special matches best
    assert max(relevance, key=relevance.get) == "special"
    blended = blend(relevance, prior, prior_weight(UserProfile(stated_preferences=("a comedy",)), PriorConfig()))
    assert max(blended, key=blended.get) == "classic"
    assert blend(relevance, prior, 0.0) == pytest.approx({"special": 1.0, "classic": 10 / 12, "dud": 0.0})


def test_the_prior_fades_as_liked_items_accumulate_and_counts_more_within_stated_limits():
    config = PriorConfig(weight=0.9, free_weight=0.6, half=2.0)
    newcomer = UserProfile(stated_preferences=("slow sci-fi",))
    one = UserProfile(history=(HistoryEntry("a"),))
    many = UserProfile(history=tuple(HistoryEntry(str(i), 5.0, i) for i in range(20)))
    assert prior_weight(newcomer, config) == pytest.approx(0.6)
    assert prior_weight(one, config) == pytest.approx(0.6 / 1.5)
    assert prior_weight(many, config) == pytest.approx(0.6 / 11)
    limited = LimitedProfile(stated_preferences=("a comedy from the 2000s",), constraints=Limits(2000))
    assert prior_weight(limited, config) == pytest.approx(0.9)


def test_a_catalogue_without_ratings_uses_counts_and_one_without_interactions_changes_nothing():
    rows = [("u1", "a", None), ("u2", "a", None), ("u1", "b", None)]
    unrated = QualityPrior.from_interactions(_interactions(rows), PriorConfig(quality_share=0.5))
    assert unrated.quality == {} and unrated.value("a") == pytest.approx(0.5) and unrated.value("b") < 0.5
    empty = QualityPrior({}, {})
    assert empty.value("a") == 0.0
    relevance = {"x": 0.9, "y": 0.5, "z": 0.1}
    mixed = blend(relevance, empty, 0.8)
    assert sorted(mixed, key=mixed.get, reverse=True) == ["x", "y", "z"]


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="weight"):
        PriorConfig(weight=1.5)
    with pytest.raises(ConfigError, match="strength"):
        PriorConfig(strength=-1.0)


class Pool:
    name = "text"

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.asked: list[int] = []

    def retrieve(self, profile: UserProfile, k: int) -> list[Candidate]:
        self.asked.append(k)
        return [Candidate(i, 1.0 - n / 10, ("text",), Evidence(stage_scores=(("text", 1.0 - n / 10),)))
                for n, i in enumerate(i for i in self.ids if i not in profile.seen)][:k]  # fmt: skip


ITEMS = {"special": Item("special", "Stand-up Special", 2009, ("Comedy",)),
         "classic": Item("classic", "Classic Comedy", 2004, ("Comedy",)),
         "dud": Item("dud", "Dud", 2001, ("Comedy",)), "old": Item("old", "Old Comedy", 1975, ("Comedy",)),
         **{f"f{n}": Item(f"f{n}", f"Unrated Comedy {n}", 2005, ("Comedy",)) for n in range(6)}}  # fmt: skip
TEXT_ORDER = ["special", "classic", "old", "dud", *(f"f{n}" for n in range(6))]  # the special matches the words best


@dataclass(frozen=True)
class Limits:
    year_min: int

    def allows(self, item: Item) -> bool:
        return (item.year or 0) >= self.year_min


@dataclass(frozen=True)
class LimitedProfile(UserProfile):
    constraints: Limits | None = None  # the pipeline's typed constraints: anything with ``allows(item)``


def test_prior_retriever_reorders_a_deeper_pool_within_the_constraints():
    prior = QualityPrior.from_interactions(_interactions(ROWS + [("u1", "old", 5.0)] * 30))
    inner = Pool(TEXT_ORDER)
    retriever = PriorRetriever(inner, prior, ITEMS, PriorConfig(min_pool=50))
    profile = LimitedProfile(stated_preferences=("a comedy from the 2000s",), constraints=Limits(2000))
    found = retriever.retrieve(profile, 2)
    assert inner.asked == [50] and [c.item_id for c in found] == ["classic", "special"]  # "old" is outside 2000+
    PriorRetriever(inner, prior, ITEMS, PriorConfig(min_pool=50, free_pool=20)).retrieve(UserProfile(), 2)
    assert inner.asked[-1] == 20  # words alone: a shallower pool
    assert found[0].evidence.stage_scores[-1] == ("prior", pytest.approx(prior.value("classic")))
    assert found[0].score >= found[1].score
    liked = UserProfile(history=tuple(HistoryEntry(f"h{i}", 5.0, i) for i in range(60)))
    much = PriorRetriever(inner, prior, ITEMS, PriorConfig(weight=0.8, half=0.5)).retrieve(liked, 2)
    assert much[0].item_id == "special"  # much evidence: relevance leads
