"""The dialogue co-occurrence model and its retrievers, on the fixture dialogues (counts worked out by hand)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from llmrec.data.redial import load_dialogues
from llmrec.errors import DataError
from llmrec.retrieval import Retriever
from llmrec.retrieval.dialogue import (
    DialogueConfig,
    DialogueModel,
    DialogueRetriever,
    IdMappedRetriever,
    SuggestionPopularityRetriever,
    context_profile,
)
from llmrec.types import Candidate, Evidence, HistoryEntry, Item, UserProfile

FIXTURE = Path(__file__).parent / "data" / "redial_tiny.jsonl"
REDIAL = {"111": Item("111", "Toy Story", 1995), "222": Item("222", "Shrek", 2001),
          "333": Item("333", "Monsters, Inc.", 2001), "444": Item("444", "Up", 2009),
          "555": Item("555", "Never Mentioned", 1990)}  # fmt: skip
PLAIN = DialogueConfig(succession_weight=1.0, alpha=0.0, decay=1.0, popularity_weight=0.0)


@pytest.fixture(scope="module")
def model() -> DialogueModel:
    return DialogueModel.fit(load_dialogues(FIXTURE), ids=REDIAL, config=PLAIN)


def _row(matrix, model: DialogueModel, a: str) -> dict[str, float]:
    row = matrix[model.index[a]].toarray().ravel()
    return {model.ids[j]: float(v) for j, v in enumerate(row) if v}


def test_counts(model):
    # Dialogue 1 mentions 111, 222, 333, 444; dialogue 2 mentions 111 and 222.
    assert _row(model.cooccurrence, model, "111") == {"222": 2.0, "333": 1.0, "444": 1.0}
    # Recommender turns: (333, 111) after {111, 222}; (444) after {111, 222, 333}; in dialogue 2, (222) after {111}.
    assert _row(model.succession, model, "111") == {"333": 1.0, "444": 1.0, "222": 1.0}
    assert _row(model.succession, model, "333") == {"444": 1.0}
    suggested = dict(zip(model.ids, model.suggestions))
    assert suggested == {"111": 2.0, "222": 1.0, "333": 1.0, "444": 1.0, "555": 0.0}
    assert model.dialogues == 2 and "555" in model.index  # catalogue ids are kept even when never mentioned


def test_scores_follow_the_counts_and_the_constants(model):
    scores = dict(zip(model.ids, model.score(["111"])))
    assert scores == {"111": 0.0, "222": 3.0, "333": 2.0, "444": 2.0, "555": 0.0}
    normalised = model.with_config(DialogueConfig(1.0, 1.0, 1.0, 0.0))  # row 111 has 3 neighbours
    assert dict(zip(model.ids, normalised.score(["111"])))["222"] == pytest.approx(1.0)
    recent = model.with_config(DialogueConfig(1.0, 0.0, 0.5, 0.0))
    both = dict(zip(model.ids, recent.score(["333", "111"])))  # 333 is the older mention: weight 0.5
    assert both["444"] == pytest.approx(2.0 + 0.5 * 2.0)  # co 1 + succ 1 from 111; (co 1 + succ 1) x 0.5 from 333
    assert dict(zip(model.ids, model.with_config(DialogueConfig(popularity_weight=0.1)).score([])))["111"] == 0.1


def test_bad_constants_are_refused():
    with pytest.raises(DataError, match="decay"):
        DialogueConfig(decay=0.0)
    with pytest.raises(DataError, match="alpha"):
        DialogueConfig(alpha=-1.0)


def _contract(candidates: list[Candidate], profile: UserProfile, k: int, catalogue) -> None:
    ids = [c.item_id for c in candidates]
    assert len(ids) <= k and len(set(ids)) == len(ids) and not set(ids) & profile.seen and set(ids) <= set(catalogue)
    assert all(a.score >= b.score for a, b in itertools.pairwise(candidates))
    assert all(c.sources and isinstance(c.evidence, Evidence) for c in candidates)


@pytest.mark.parametrize("k", [1, 2, 10])
def test_dialogue_retriever_on_redial_ids(model, k):
    retriever = DialogueRetriever(model, REDIAL)
    assert isinstance(retriever, Retriever)
    profile = context_profile(["111"])
    found = retriever.retrieve(profile, k)
    _contract(found, profile, k, REDIAL)
    assert [c.item_id for c in found] == ["222", "333", "444"][:k]  # 333 and 444 tie: id order
    top = found[0].evidence
    assert top.collaborative == "in conversations, people who talked about Toy Story were often recommended it"
    assert top.similar_liked == ("111",) and top.stage_scores == (("dialogue", 3.0),)
    assert retriever.retrieve(UserProfile(stated_preferences=("funny",)), k) == []  # nothing mentioned yet
    disliked = UserProfile(history=(HistoryEntry("111"),), disliked=("222",))
    assert "222" not in {c.item_id for c in retriever.retrieve(disliked, k)}


def test_dialogue_retriever_serves_a_movielens_profile_through_the_mapping(model):
    movielens = {"1": Item("1", "Toy Story", 1995), "2": Item("2", "Shrek", 2001),
                 "3": Item("3", "Monsters, Inc.", 2001)}  # fmt: skip
    to_model = {"1": "111", "2": "222", "3": "333"}  # Up (444) has no MovieLens id here
    retriever = DialogueRetriever(model, movielens, to_model=to_model)
    profile = UserProfile(history=(HistoryEntry("1", 5.0),))
    found = retriever.retrieve(profile, 10)
    _contract(found, profile, 10, movielens)
    assert [c.item_id for c in found] == ["2", "3"]
    assert retriever.retrieve(UserProfile(history=(HistoryEntry("99"),)), 5) == []  # an unmapped film: nothing


def test_suggestion_popularity(model):
    retriever = SuggestionPopularityRetriever(model, REDIAL)
    assert [c.item_id for c in retriever.retrieve(UserProfile(), 2)] == ["111", "222"]
    seen = UserProfile(history=(HistoryEntry("111"),))
    found = retriever.retrieve(seen, 10)
    _contract(found, seen, 10, REDIAL)
    assert [c.item_id for c in found] == ["222", "333", "444"]  # never-suggested 555 is not proposed
    assert "recommended most often" in found[0].evidence.collaborative


def test_id_mapped_retriever_carries_a_retriever_to_another_catalogue(model):
    outer = {"a": "111", "b": "222", "c": "333", "d": "444"}
    mapped = IdMappedRetriever(DialogueRetriever(model, REDIAL), outer, name="dialogue")
    profile = UserProfile(history=(HistoryEntry("a"), HistoryEntry("zzz")), excluded=("c",))
    found = mapped.retrieve(profile, 10)
    assert [c.item_id for c in found] == ["b", "d"] and mapped.name == "dialogue"
    assert mapped.retrieve(profile, 0) == []


def test_context_profile_keeps_each_movie_once_at_its_latest_mention():
    profile = context_profile(["1", "2", "1", "3"], ["I like comedies", ""])
    assert [e.item_id for e in profile.history] == ["2", "1", "3"]
    assert [e.timestamp for e in profile.history] == [0, 1, 2] and profile.stated_preferences == ("I like comedies",)
