"""The conversation engine on the fake pipeline: onboarding, recommend, why, feedback, refine, forget."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from fixtures_catalog import ITEMS, fake_recommender
from llmrec.chat.engine import Conversation
from llmrec.chat.onboarding import MAX_QUESTIONS
from llmrec.chat.store import ProfileStore
from llmrec.llm.base import FakeLLM
from llmrec.types import Item


@pytest.fixture()
def store(tmp_path: Path) -> ProfileStore:
    return ProfileStore(tmp_path / "profiles.sqlite")


@pytest.fixture()
def rec():
    return fake_recommender()


def chat(rec, store, user="newbie", k=3) -> Conversation:
    return Conversation(rec, store, user, k=k)


def onboard(convo: Conversation) -> list:
    """Answer onboarding like a person who likes animation; returns the replies until the first cards."""
    replies = [convo.start(), convo.handle("Animation")]
    while not replies[-1].cards:
        replies.append(convo.handle("Loved it"))
        assert len(replies) < 10
    return replies


def test_newcomer_is_onboarded_in_at_most_five_questions(rec, store):
    convo = chat(rec, store)
    replies = onboard(convo)
    questions = [r for r in replies[1:-1] if r.text.endswith("?")]
    assert len(questions) + 1 <= MAX_QUESTIONS  # the genre question plus item questions
    assert len(replies[-1].cards) == 3
    assert "Why the first one?" in replies[-1].chips
    state = convo.state()
    assert state.liked and state.onboarding == "done"
    assert not {c.item_id for c in replies[-1].cards} & set(state.liked)


def test_skip_at_any_time_still_recommends(rec, store):
    convo = chat(rec, store)
    convo.start()
    reply = convo.handle("skip")
    assert reply.cards or "more to go on" in reply.text  # nothing known: asks for something, never crashes
    reply = convo.handle("I loved Toy Story")
    assert reply.text


def test_why_answers_from_the_recorded_evidence(rec, store):
    convo = chat(rec, store)
    cards = onboard(convo)[-1].cards
    reply = convo.handle("why did you recommend the second one?")
    shown = convo.state().shown_item(cards[1].item_id)
    assert reply.text.startswith(f"I recommended {cards[1].title} because: {shown.explanation}")
    assert "What I recorded" in reply.text or "scores:" in reply.text
    button = convo.why(cards[0].item_id)
    assert cards[0].title in button.text


def test_why_about_an_item_never_shown_is_not_invented(rec, store):
    convo = chat(rec, store)
    onboard(convo)
    reply = convo.why("30")
    assert "haven't recommended" in reply.text


def test_feedback_changes_the_next_recommendations_at_once(rec, store):
    convo = chat(rec, store)
    first = onboard(convo)[-1].cards
    reply = convo.feedback(first[0].item_id, "dislike")
    assert reply.cards and first[0].item_id not in {c.item_id for c in reply.cards}
    assert first[0].item_id in convo.state().disliked
    second = reply.cards[1]  # "the second one" is the second card of the list on screen now
    reply = convo.handle("seen the second one")
    assert second.item_id in convo.state().seen and second.item_id not in {c.item_id for c in reply.cards}


def test_refine_newer_respects_the_constraint(rec, store):
    convo = chat(rec, store)
    cards = onboard(convo)[-1].cards
    years = sorted(ITEMS[c.item_id].year for c in cards)
    reply = convo.handle("something newer")
    assert reply.cards
    assert "relaxed" in reply.text or all(c.year > years[len(years) // 2] for c in reply.cards)


def test_why_not_names_the_profile_reason(rec, store):
    convo = chat(rec, store)
    onboard(convo)
    convo.handle("nothing scary, no horror")
    reply = convo.handle("why not Alien?")
    assert "Alien (1979)" in reply.text and "avoid" in reply.text


def test_state_survives_restarts_and_users_are_isolated(rec, store, tmp_path):
    a = chat(rec, store, "alice")
    onboard(a)
    liked = a.state().liked
    again = Conversation(rec, ProfileStore(tmp_path / "profiles.sqlite"), "alice")
    assert again.state().liked == liked
    bob = chat(rec, store, "bob")
    assert bob.state().liked == [] and bob.state().shown == []
    assert all(t.role in ("user", "assistant") for t in store.turns("alice"))
    assert store.turns("bob") == []


def test_forget_me_deletes_state_and_transcript(rec, store, tmp_path):
    convo = chat(rec, store, "carol")
    onboard(convo)
    reply = convo.handle("forget me")
    assert "deleted" in reply.text
    assert store.load("carol") is None and store.turns("carol") == []
    raw = (tmp_path / "profiles.sqlite").read_bytes()
    assert b"Loved it" not in raw


def test_two_tabs_of_the_same_user_lose_no_feedback(rec, store):
    tab1, tab2 = chat(rec, store, "dan"), chat(rec, store, "dan")
    onboard(tab1)
    errors = []

    def like(tab, item):
        try:
            tab.feedback(item, "like")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=like, args=(t, i)) for t, i in ((tab1, "7"), (tab2, "8"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert {"7", "8"} <= set(tab1.state().liked)


@pytest.mark.parametrize("message", ["", "   \n\t ", "x" * 1_000_000, "🎬🍿 أحب أفلام الخيال العلمي", "\udcff bad"])
def test_odd_messages_get_a_useful_reply(rec, store, message):
    reply = chat(rec, store).handle(message)
    assert reply.text and not reply.ended
    if len(message) > 10_000:
        assert any("long" in n for n in reply.notes)


def test_unknown_and_ambiguous_titles(rec, store):
    items = dict(ITEMS)
    items["40"] = Item("40", "Heat", 1986, ("Action",))
    ambiguous = fake_recommender()
    ambiguous._dataset = dataclasses.replace(ambiguous.dataset, items=items)
    ambiguous.__dict__.pop("dataset", None)
    convo = chat(ambiguous, store, "erin")
    convo.start()
    reply = convo.handle("I loved Zzyzx Qwerty")  # no such film: read as a description to search by
    assert "No film is called \"Zzyzx Qwerty\"" in reply.text and "closest titles" in reply.text
    assert any("Zzyzx Qwerty" in p for p in convo.state().preferences)
    reply = convo.handle("I hated Zzyzx Qwerty")  # but a dislike of nothing known changes nothing
    assert "couldn't find" in reply.text
    reply = convo.handle("I loved Heat")
    assert "Which one do you mean" in reply.text and "Heat (1995)" in reply.text and "Heat (1986)" in reply.text
    reply = convo.handle("the 1986 one")
    assert "40" in convo.state().liked


def test_feedback_on_a_stale_or_unknown_card(rec, store):
    convo = chat(rec, store)
    onboard(convo)
    assert "out of date" in convo.feedback("does-not-exist", "like").text
    reply = convo.feedback("30", "seen")
    assert "earlier list" in reply.text


def test_model_failure_mid_conversation_is_reported_and_the_session_goes_on(store):
    broken = fake_recommender(llm=FakeLLM(fail=True))
    convo = chat(broken, store)
    reply = onboard(convo)[-1]
    assert reply.cards and "retrieval order" in reply.text
    assert convo.handle("why the first one?").text.startswith("I recommended")


def test_returning_user_skips_onboarding(rec, store):
    convo = chat(rec, store, "u1")
    assert convo.start().text.startswith("Welcome back")
    assert convo.handle("recommend").cards


def test_titles_named_in_passing_are_found_with_or_without_a_year():
    from llmrec.chat.mentions import spot_titles

    def names(text):
        return [ITEMS[m.item_id].display_title for m in spot_titles(text, ITEMS)]

    assert names("We watched Toy Story (1995) and then The Matrix (1999) twice") == ["Toy Story (1995)",
                                                                                    "The Matrix (1999)"]
    assert names("finding nemo was lovely") == ["Finding Nemo (2003)"]  # two words: no year needed
    assert names("it was a real heat wave, pure alien weather") == []  # one-word titles need their year
    assert names("Heat (1996) is my favourite") == ["Heat (1995)"]  # a year one off still points at it
    assert names("Heat (1972) is my favourite") == []  # no Heat near 1972 here


@pytest.mark.parametrize(("text", "feeling"), [
    ("Shrek (2001) is so funny", "like"), ("I did not see the movie Shrek (2001)", "unseen"),
    ("haven't watched Shrek (2001) yet", "unseen"), ("Shrek (2001) was boring", "dislike"),
    ("I didn't like Shrek (2001) at all", "dislike"),
])  # fmt: skip
def test_a_sentence_naming_a_film_says_how_it_feels(text, feeling):
    from llmrec.chat.mentions import mention_feeling

    assert mention_feeling(text) == feeling


def test_films_mentioned_in_passing_change_the_profile(rec, store):
    convo = chat(rec, store, "redial-like")
    convo.start()
    convo.handle("Shrek (2001) is so funny")
    convo.handle("No, I think I would rather watch Finding Nemo (2003) tonight")
    convo.handle("I did not see the movie Alien (1979)")
    state = convo.state()
    assert state.liked == ["7", "3"] and "4" not in state.liked + state.disliked
    reply = convo.handle("I love adam sandler")  # a taste, not a title: searched as a description
    assert "No film is called" in reply.text and any("adam sandler" in p for p in convo.state().preferences)
    reply = convo.handle("I like that kind of movies")  # nothing to go on: no junk preference
    assert "No film is called" not in reply.text


def test_llm_explanations_stream_in_and_are_what_why_quotes(store):
    from llmrec.explanation import template_explanation

    llm = FakeLLM()
    convo = Conversation(fake_recommender(llm), store, "streamer", k=2, stream_explanations=True)
    cards = onboard(convo)[-1].cards
    assert convo.streams and all(c.explanation_source == "template" for c in cards)  # at once, from the evidence
    first, second = (convo.state().shown_item(c.item_id) for c in cards)
    item = ITEMS[first.item_id]
    sentence = template_explanation(item, first.evidence_value()).split(". ")[0].rstrip(".")
    faithful = f"Because {sentence[0].lower()}{sentence[1:]}."  # one sentence from the evidence: kept
    llm._replies = [faithful]
    steps = list(convo.stream_explanation(first.item_id))
    assert len(steps) > 2 and all(source == "streaming" for _, source in steps[:-1])
    assert steps[-1] == (faithful, "llm") and len(steps[0][0]) < len(faithful)  # it grew piece by piece
    assert convo.state().shown_item(first.item_id).explanation == faithful
    assert faithful in convo.why(first.item_id).text
    # A model failing mid-stream: the template sentence is recorded and the session goes on.
    llm._fail = True
    last = list(convo.stream_explanation(second.item_id))[-1]
    assert last[1] == "template-fallback" and convo.state().shown_item(second.item_id).explanation == last[0]
    llm._fail = False
    assert list(convo.stream_explanation("not-shown")) == []
    assert convo.handle("recommend").cards
    # Without streaming, or with a template explainer, replies carry their final sentences and nothing streams.
    plain = Conversation(fake_recommender(explainer={"kind": "template"}), store, "plain", stream_explanations=True)
    assert not plain.streams


def test_negated_likes_and_favourites_without_a_verb_before_the_title(rec, store):
    convo = chat(rec, store, "phrasing", k=3)
    cards = onboard(convo)[-1].cards
    convo.handle("I did not like the second one")
    assert cards[1].item_id in convo.state().disliked and cards[1].item_id not in convo.state().liked
    convo.handle("The Matrix (1999) is one of my favourites")
    assert "8" in convo.state().liked
