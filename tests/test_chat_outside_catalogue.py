"""Films outside the rated catalogue (``movies_all.csv``): recognised, said back, kept, used as text, never a card."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fixtures_catalog import ITEMS, fake_recommender
from llmrec.chat.engine import Conversation, ProfileEdit
from llmrec.chat.outside import OutsideFilms, outside_films, preference_text
from llmrec.chat.state import ChatState
from llmrec.chat.store import ProfileStore
from llmrec.chat.transcript import turn_record
from llmrec.retrieval.text import TextRetriever
from llmrec.types import Item

PARASITE = "202439"
SOLARIS_2002 = "5903"  # the rated catalogue has Solaris (1972)
JOKER_2019, JOKER_2016 = "204698", "103671"
OUTSIDE_ROWS = [
    (PARASITE, "Parasite (2019)", "Comedy|Drama", "social commentary|suspense|class differences"),
    (SOLARIS_2002, "Solaris (2002)", "Drama|Romance|Sci-Fi", "space|grief"),
    (JOKER_2019, "Joker (2019)", "Crime|Drama|Thriller", "mental illness"),
    (JOKER_2016, "Joker (2016)", "Comedy", ""),
    ("195159", "Spider-Man: Into the Spider-Verse (2018)", "Action|Animation", "superheroes"),
]


def write_movies_all(data_dir: Path) -> Path:
    """A small ``ml-25m-keywords/movies_all.csv``: the rated films (same ids) and five outside it."""
    folder = data_dir / "ml-25m-keywords"
    folder.mkdir(parents=True)
    rows = [(i, item.display_title, "|".join(item.genres), "|".join(item.keywords)) for i, item in ITEMS.items()]
    lines = ["movieId,title,genres,keyword"] + [",".join(f'"{v}"' for v in row) for row in [*rows, *OUTSIDE_ROWS]]
    (folder / "movies_all.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data_dir


@pytest.fixture()
def store(tmp_path: Path) -> ProfileStore:
    return ProfileStore(tmp_path / "profiles.sqlite")


def recommender(data_dir: Path | None):
    data = {"min_count": 3, "data_dir": str(data_dir) if data_dir else None}
    return fake_recommender(understanding={"kind": "rules"}, data=data)


@pytest.fixture()
def rec(tmp_path: Path):
    return recommender(write_movies_all(tmp_path / "data"))


def chat(rec, store, user="newbie") -> Conversation:
    convo = Conversation(rec, store, user, k=3)
    convo.start()
    return convo


def test_the_wider_list_holds_only_films_outside_the_rated_catalogue(rec):
    outside = outside_films(rec)
    assert isinstance(outside, OutsideFilms) and outside is outside_films(rec.variant(ranker={"kind": "passthrough"}))
    assert set(outside) == {row[0] for row in OUTSIDE_ROWS}  # loaded on first use, rated ids left out
    assert outside.find("Parasite (2019)") == (PARASITE, ())
    assert outside.find("parasite") == (PARASITE, ())
    assert outside.find("Parasite (2005)") == (None, ())  # a year more than one off is another film
    assert outside.find("Parasit") == (None, ())  # no fuzzy spelling among the wider list
    assert outside.find("Joker")[0] is None and set(outside.find("Joker")[1]) == {JOKER_2016, JOKER_2019}
    assert outside.find("Spider-Man")[0] == "195159"  # a main title, as in the rated catalogue


def test_a_film_outside_the_catalogue_is_recognised_said_back_kept_and_shown(rec, store):
    convo = chat(rec, store)
    reply = convo.handle("I loved Parasite (2019)")
    assert "Got it: you loved Parasite (2019)." in reply.text
    assert "It's not among the films I can recommend (no ratings for it here), but I'll use it" in reply.text
    film = reply.understood.films[0]
    assert (film.item_id, film.stance, film.outside) == (PARASITE, "liked", True)
    state = convo.state()
    assert state.outside_liked == [PARASITE] and state.liked == [] and not state.preferences
    assert ChatState.from_json(state.to_json()) == state
    record = turn_record("I loved Parasite (2019)", reply, convo)
    assert record["profile"]["outside_liked"] == [{"item_id": PARASITE, "title": "Parasite (2019)"}]
    assert record["understood"]["films"][0]["title"] == "Parasite (2019)"


def test_old_saved_states_load_without_outside_lists():
    old = ChatState("u", liked=["1"]).to_json()
    del old["outside_liked"], old["outside_disliked"]
    state = ChatState.from_json(old)
    assert state.outside_liked == [] and state.outside_disliked == [] and state.liked == ["1"]


def test_it_becomes_words_of_the_text_query_and_never_a_card(rec, store):
    convo = chat(rec, store)
    convo.handle("I loved Parasite (2019)")
    convo.handle("recommend something")
    convo.handle("I hated Solaris (2002)")  # not the Solaris (1972) that may be on screen
    assert convo.state().outside_disliked == [SOLARIS_2002]
    profile = convo.profile()
    liked_text = preference_text(convo.outside[PARASITE])
    assert liked_text == "films like Parasite (2019): comedy, drama, social commentary, suspense, class differences"
    assert liked_text in profile.stated_preferences
    disliked_text = "nothing like Solaris (2002) drama romance sci-fi grief space"  # keywords rarest first
    assert disliked_text in profile.stated_preferences
    assert not profile.history  # no rated film: the text carries it
    vectors = TextRetriever(rec.index, rec.embedder, rec.items).profile_vectors(profile)
    assert [q.text for q in vectors.queries if q.label == "preference"] == [liked_text]
    assert len(vectors.negatives) == 1  # the disliked film's words push similar films down
    for message in ("recommend something", "more like Parasite (2019)", "something different"):
        reply = convo.handle(message)
        assert reply.cards and all(c.item_id in ITEMS for c in reply.cards), message
    assert all(s.item_id in ITEMS for s in convo.state().shown)


def test_why_and_why_not_about_it_never_crash(rec, store):
    convo = chat(rec, store)
    convo.handle("I loved Parasite (2019)")
    convo.handle("recommend something")
    for message in ("why Parasite (2019)?", "why not Parasite (2019)?", "what about Parasite (2019)?"):
        reply = convo.handle(message)
        assert "not among the films I can recommend" in reply.text, message
    first = convo.state().current()[0].item_id
    assert "I recommended" in convo.why(first).text


def test_rated_films_come_first_and_ambiguity_is_asked(rec, store):
    convo = chat(rec, store)
    convo.handle("I loved Solaris")
    assert convo.state().liked == ["5"] and convo.state().outside_liked == []
    reply = convo.handle("I loved Joker")
    assert "Which one do you mean" in reply.text and "Joker (2019)" in reply.text and "Joker (2016)" in reply.text
    reply = convo.handle("Joker (2019)")
    assert "Got it: you loved Joker (2019)." in reply.text and "not among the films I can recommend" in reply.text
    assert convo.state().outside_liked == [JOKER_2019]


def test_a_part_of_its_title_is_not_a_rated_film_too(tmp_path, store):
    rec = recommender(write_movies_all(tmp_path / "data"))
    items = {**ITEMS, "5349": Item("5349", "Spider-Man", 2002, ("Action",))}
    rec._dataset = dataclasses.replace(rec.dataset, items=items)
    rec.__dict__.pop("dataset", None)
    convo = chat(rec, store)
    reply = convo.handle("I loved Spider-Man: Into the Spider-Verse")
    assert [(m.item_id, m.outside) for m in reply.understood.films] == [("195159", True)]
    assert convo.state().liked == [] and convo.state().outside_liked == ["195159"]


def test_forget_me_start_over_and_the_profile_panel_remove_it(rec, store):
    convo = chat(rec, store)
    convo.handle("I loved Parasite (2019)")
    convo.edit_profile(ProfileEdit(liked=(), outside_liked=None))  # a panel that does not show them keeps them
    assert convo.state().outside_liked == [PARASITE]
    convo.edit_profile(ProfileEdit(outside_liked=()))
    assert convo.state().outside_liked == []
    convo.handle("I loved Parasite (2019)")
    convo.handle("start over")
    assert convo.state().outside_liked == []
    convo.handle("I loved Parasite (2019)")
    convo.handle("forget me")
    assert convo.state().outside_liked == [] and convo.store.load(convo.user_id) is None


@pytest.mark.parametrize("with_folder", [False, True])
def test_without_movies_all_the_chat_behaves_as_before(tmp_path, store, with_folder):
    folder = tmp_path / "empty"
    folder.mkdir()
    rec = recommender(folder if with_folder else None)
    assert outside_films(rec) is None
    convo = chat(rec, store)
    reply = convo.handle("I loved Parasite (2019)")
    assert "No film is called \"Parasite (2019)\"" in reply.text
    assert convo.state().outside_liked == [] and convo.outside == {}
    assert turn_record("x", reply, convo)["profile"]["outside_liked"] == []


def test_the_app_profile_panel_titles_it(rec, tmp_path):
    from ui.service import Service

    service = Service(rec, tmp_path / "app.sqlite", "tiny")
    service.catalogue.set()  # the items are loaded (what the app's warm-up signals)
    assert service.title(PARASITE) == "Parasite (2019)" and service.title("1") == "Toy Story (1995)"
    assert service.title("no-such-id") == "no-such-id"


def test_the_language_model_reader_links_it_too(tmp_path, store):
    from llmrec.llm.base import FakeLLM

    reading = '{"liked": ["Parasite (2019)"], "requests": []}'
    llm = FakeLLM(replies=["You liked it."] * 50, json_replies=[reading])
    data = {"min_count": 3, "data_dir": str(write_movies_all(tmp_path / "data"))}
    convo = chat(fake_recommender(llm, data=data), store)  # understanding.kind = "llm"
    reply = convo.handle("honestly parasite (2019) blew me away")
    assert reply.understood.source == "llm" and [m.item_id for m in reply.understood.films] == [PARASITE]
    assert convo.state().outside_liked == [PARASITE]
