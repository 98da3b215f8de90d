"""Issue 14's wiring: the dialogue scorer chosen in the config, and the quality prior ordering cold-start lists."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from fixtures_catalog import ITEMS, PopularityScorer, toy_dataset
from llmrec.chat.state import ChatState
from llmrec.config import RecommenderConfig
from llmrec.data.dataset import Dataset, Interactions
from llmrec.embedding import HashingEmbedder
from llmrec.errors import ConfigError
from llmrec.index.memory import MemoryIndex
from llmrec.indexing import build_index, store_spec
from llmrec.pipeline import Recommender
from llmrec.types import Item, UserProfile

FIXTURE = Path(__file__).parent / "data" / "redial_tiny.jsonl"
# ReDial's movie list for the fixture dialogues: three of its films are in the toy catalogue, Up is not.
REDIAL_MOVIES = 'movieId,movieName,nbMentions\n111,Toy Story (1995),9\n222,Shrek (2001),9\n333,"Monsters, Inc.  (2001)",9\n444,Up (2009),9\n'  # noqa: E501


def _recommender(dataset: Dataset, **sections: dict) -> Recommender:
    emb = HashingEmbedder(dim=64)
    index = MemoryIndex(store_spec(emb))
    build_index(dataset, emb, index)
    defaults = {"data": {"min_count": 1}, "ranker": {"kind": "passthrough"}, "explainer": {"kind": "template"}}
    config = RecommenderConfig().updated(**{**defaults, **sections})
    return Recommender(config, dataset=dataset, embedder=emb, index=index,
                       scorer_factory=lambda name, seq: PopularityScorer(seq))  # fmt: skip


@pytest.fixture()
def dialogues(tmp_path: Path) -> Path:
    folder = tmp_path / "redial"
    folder.mkdir()
    shutil.copy(FIXTURE, folder / "train.jsonl")
    (folder / "movies_with_mentions.csv").write_text(REDIAL_MOVIES, encoding="utf-8")
    return folder / "train.jsonl"


# -- the dialogue scorer ---------------------------------------------------------------------
def test_the_config_selects_the_dialogue_scorer_and_its_candidates_come_from_the_dialogues(dialogues: Path):
    rec = _recommender(toy_dataset(), retrieval={"retriever": "dialogue", "dialogue_file": str(dialogues)})
    recs = rec.recommend(rec.profile(likes=["Toy Story (1995)"]), k=5)
    # The fixture dialogues recommend Shrek and Monsters, Inc. after Toy Story; nothing else of the toy
    # catalogue is ever mentioned, so nothing else can come from them (Toy Story itself is history).
    assert {r.item.item_id for r in recs.items} == {"2", "7"}
    assert all("dialogue" in r.sources for r in recs.items)
    assert any("in conversations" in (r.evidence.collaborative or "") for r in recs.items)
    scorer = rec.dialogue_scorer
    assert scorer.counts["dialogues"] == 2 and scorer.counts["catalogue items reachable"] == 3


def test_the_hybrid_retriever_fuses_the_dialogue_scorer_only_when_it_has_a_weight(dialogues: Path):
    likes = ["Toy Story (1995)"]
    off = _recommender(toy_dataset(), retrieval={"dialogue_file": str(dialogues), "dialogue_weight": 0.0})
    on = _recommender(toy_dataset(), retrieval={"dialogue_file": str(dialogues)})  # on by default
    found_off = off.recommend(off.profile(likes=likes), k=8).items
    found_on = on.recommend(on.profile(likes=likes), k=8).items
    assert not any("dialogue" in r.sources for r in found_off)
    assert {r.item.item_id for r in found_on if "dialogue" in r.sources} == {"2", "7"}


def test_the_dialogue_scorer_leaves_a_long_history_to_the_collaborative_model(dialogues: Path):
    likes = ["Toy Story (1995)"]
    rec = _recommender(toy_dataset(), retrieval={"dialogue_file": str(dialogues), "dialogue_weight": 1.0,
                                                 "dialogue_max_liked": 0})  # fmt: skip
    assert not any("dialogue" in r.sources for r in rec.recommend(rec.profile(likes=likes), k=8).items)
    one = rec.variant(retrieval={"dialogue_max_liked": 1})
    assert any("dialogue" in r.sources for r in one.recommend(one.profile(likes=likes), k=8).items)


def test_missing_dialogues_are_a_note_and_the_other_scorers_still_answer(tmp_path: Path):
    rec = _recommender(toy_dataset(), retrieval={"dialogue_file": str(tmp_path / "none.jsonl"), "dialogue_weight": 1.0})
    recs = rec.recommend(rec.profile(likes=["Toy Story (1995)"]), k=3)
    assert len(recs.items) == 3 and any("dialogue retrieval skipped" in n and "none.jsonl" in n for n in recs.notes)
    alone = _recommender(toy_dataset(), retrieval={"retriever": "dialogue", "dialogue_file": str(tmp_path / "x")})
    assert alone.recommend(alone.profile(likes=["Toy Story (1995)"])).items == []
    # The default file (<data dir>/redial/train.jsonl.gz) is optional: without it, no note, the same list as without
    # the dialogue scorer.
    default = _recommender(toy_dataset(), data={"data_dir": str(tmp_path)})
    plain = _recommender(toy_dataset(), data={"data_dir": str(tmp_path)}, retrieval={"dialogue_weight": 0.0})
    found = default.recommend(default.profile(likes=["Toy Story (1995)"]), k=3)
    assert not any("dialogue" in n for n in found.notes)
    assert [r.item.item_id for r in found.items] == [
        r.item.item_id for r in plain.recommend(plain.profile(likes=["Toy Story (1995)"]), k=3).items]


# -- liked films outside the rated catalogue as dialogue context -------------------------------------------
UP = "68954"  # Up (2009): ReDial's 444 in the fixture dialogues, in movies_all.csv, not in the toy catalogue
PARASITE = "202439"  # in movies_all.csv, never in the fixture dialogues


def _movies_all(data_dir: Path) -> Path:
    """A small ``ml-25m-keywords/movies_all.csv``: the toy catalogue (same ids) and Up, outside it."""
    folder = data_dir / "ml-25m-keywords"
    folder.mkdir(parents=True)
    rows = [(i, item.display_title, "|".join(item.genres)) for i, item in ITEMS.items()]
    rows += [(UP, "Up (2009)", "Adventure|Animation"), (PARASITE, "Parasite (2019)", "Comedy|Drama")]
    lines = ["movieId,title,genres"] + [",".join(f'"{v}"' for v in row) for row in rows]
    (folder / "movies_all.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data_dir


def _up_fan(film: str = UP) -> UserProfile:
    """A chat profile whose only liked film is outside the catalogue (its text preference, no history)."""
    return ChatState("fan", outside_liked=[film]).to_profile(None, {film: Item(film, "Up", 2009, ("Animation",))})


def test_the_chat_profile_carries_the_liked_films_outside_the_catalogue():
    profile = _up_fan()
    assert profile.outside_liked == (UP,) and not profile.history and profile.stated_preferences
    assert UserProfile().outside_liked == () and ChatState("x").to_profile() == UserProfile(user_id="x")


def test_a_liked_film_outside_the_catalogue_is_context_for_the_dialogue_scorer(dialogues: Path, tmp_path: Path):
    data = {"min_count": 1, "data_dir": str(_movies_all(tmp_path / "data"))}
    rec = _recommender(toy_dataset(), data=data, retrieval={"retriever": "dialogue", "dialogue_file": str(dialogues)})
    plain = rec.recommend(rec.profile(likes=["Toy Story (1995)"]), k=5)
    assert {r.item.item_id for r in plain.items} == {"2", "7"}
    assert rec.dialogue_scorer.outside is not None and rec.dialogue_scorer.outside._to_model is None  # not read yet
    # Up comes up with Toy Story, Shrek and Monsters, Inc. in the fixture dialogues: all three are candidates; Up
    # itself (ReDial's 444, outside the catalogue) never is.
    recs = rec.recommend(_up_fan(), k=5)
    assert {r.item.item_id for r in recs.items} == {"1", "2", "7"}
    assert rec.dialogue_scorer.outside.to_model == {UP: "444"}
    assert all("people who talked about Up were" in (r.evidence.collaborative or "") for r in recs.items)
    assert all(r.evidence.similar_liked == () for r in recs.items)  # catalogue ids only
    found = rec.dialogue_scorer.retriever(rec.items).retrieve(_up_fan(), 50)
    assert UP not in {c.item_id for c in found} and {c.item_id for c in found} <= set(rec.items)
    # After the liked history: with Toy Story liked too, Toy Story is history and Up adds nothing else here.
    both = rec.recommend(replace(rec.profile(likes=["Toy Story (1995)"]), outside_liked=(UP,)), k=5)
    assert {r.item.item_id for r in both.items} == {"2", "7"}
    hybrid = rec.variant(retrieval={"retriever": "hybrid", "dialogue_weight": 1.0})
    assert any("dialogue" in r.sources for r in hybrid.recommend(_up_fan(), k=8).items)


def test_without_movies_all_a_liked_film_outside_the_catalogue_changes_nothing(dialogues: Path, tmp_path: Path):
    data = {"min_count": 1, "data_dir": str(tmp_path)}
    alone = _recommender(toy_dataset(), data=data, retrieval={"retriever": "dialogue", "dialogue_file": str(dialogues)})
    assert alone.recommend(_up_fan(), k=5).items == [] and alone.dialogue_scorer.outside is None
    on = _recommender(toy_dataset(), data=data, retrieval={"dialogue_file": str(dialogues), "dialogue_weight": 1.0})
    off = _recommender(toy_dataset(), data=data, retrieval={"dialogue_file": str(dialogues), "dialogue_weight": 0.0})
    found_on, found_off = on.recommend(_up_fan(), k=8), off.recommend(_up_fan(), k=8)
    assert [r.item.item_id for r in found_on.items] == [r.item.item_id for r in found_off.items]
    assert not any("dialogue" in r.sources for r in found_on.items)
    # With movies_all.csv, an outside film the dialogues never mention changes nothing either.
    data = {"min_count": 1, "data_dir": str(_movies_all(tmp_path / "data"))}
    on = _recommender(toy_dataset(), data=data, retrieval={"dialogue_file": str(dialogues), "dialogue_weight": 1.0})
    unknown = on.recommend(_up_fan(PARASITE), k=8).items
    assert [r.item.item_id for r in unknown] == [r.item.item_id for r in found_off.items]
    assert on.dialogue_scorer.outside_context([PARASITE, UP]) == ["444"]


def test_an_unknown_retriever_kind_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="dialogue"):
        RecommenderConfig().updated(retrieval={"retriever": "conversations"})


# -- the quality prior -----------------------------------------------------------------------
def _comedies() -> Dataset:
    """"Comedy From The 2000s" matches the request's words best but two people rated it; "Big Hit" is a
    comedy of the 2000s that forty people rated well."""
    items = {
        "special": Item("special", "Comedy From The 2000s", 2003, ("Comedy",), ("comedy", "2000s", "stand-up")),
        "hit": Item("hit", "Big Hit", 2004, ("Comedy",), ("friends", "road trip")),
        "old": Item("old", "Old Comedy Classic", 1955, ("Comedy",), ("comedy",)),
    }
    for n in range(12):
        items[f"d{n}"] = Item(f"d{n}", f"Drama Number {n}", 1990 + n, ("Drama",), ("family",))
    rows = [(f"u{n}", "special", 5.0, n) for n in range(2)]
    rows += [(f"u{n}", "hit", 4.0 + (n % 3) / 2, n) for n in range(40)]
    rows += [(f"u{n}", "old", 3.5, n) for n in range(30)]
    rows += [(f"u{n}", f"d{m}", 3.0, n) for n in range(40) for m in range(n % 12, n % 12 + 3) if m < 12]
    users, ids, ratings, stamps = zip(*rows)
    return Dataset("comedies", items, Interactions.from_columns(users, ids, ratings, stamps))


def test_the_prior_puts_the_well_known_film_first_for_a_cold_start_request():
    query = "a comedy from the 2000s"
    plain = _recommender(_comedies(), retrieval={"retriever": "text", "quality_prior": False})
    first = plain.recommend(plain.profile(query=query), k=2).items
    assert [r.item.item_id for r in first] == ["special", "hit"]  # by the words alone, the two-rating special
    rec = _recommender(_comedies(), retrieval={"retriever": "text"})
    assert RecommenderConfig().retrieval.quality_prior is True
    shown = rec.recommend(rec.profile(query=query), k=2).items
    assert [r.item.item_id for r in shown] == ["hit", "special"]
    assert all(2000 <= r.item.year <= 2009 and "Comedy" in r.item.genres for r in shown)


def test_the_prior_leaves_a_list_alone_once_the_history_speaks():
    data = _comedies()
    on = _recommender(data, retrieval={"retriever": "text"})
    off = _recommender(data, retrieval={"retriever": "text", "quality_prior": False})
    many = [f"Drama Number {n} ({1990 + n})" for n in range(8)]  # eight liked films: more than max_liked
    ids_on = [r.item.item_id for r in on.recommend(on.profile(likes=many, query="a comedy"), k=3).items]
    ids_off = [r.item.item_id for r in off.recommend(off.profile(likes=many, query="a comedy"), k=3).items]
    assert ids_on == ids_off
    one = on.recommend(on.profile(query="a comedy from the 2000s"), k=1).items[0]
    assert ("prior", pytest.approx(on.quality_prior.value("hit"))) in one.evidence.stage_scores


def test_a_variant_shares_the_prior_and_the_dialogue_model(dialogues: Path):
    rec = _recommender(toy_dataset(), retrieval={"dialogue_file": str(dialogues), "dialogue_weight": 1.0})
    scorer, prior = rec.dialogue_scorer, rec.quality_prior
    other = rec.variant(retrieval={"retriever": "dialogue"})
    assert other.dialogue_scorer is scorer and other.quality_prior is prior
    elsewhere = rec.variant(retrieval={"dialogue_file": str(dialogues.parent / "other.jsonl")})
    assert "dialogue_scorer" not in elsewhere.__dict__
