"""The conversation: one user's session over the shared ``Recommender``. No UI code here.

``Conversation.handle(message)`` cleans the message, records it, reads it into an ``Understanding``
(``llmrec.chat.readers``: the language model, with rules for exact phrases and as the fallback), lets
the dialogue policy (``llmrec.chat.policy``) change the stored state and build the reply, saves both,
and returns the ``Reply`` (``llmrec.chat.present``: text, cards, quick replies, what was understood).
Buttons in an app call ``act`` / ``feedback`` / ``why`` with an item id; the profile panel calls
``edit_profile``. State changes run in a transaction that is retried when another tab of the same user
wrote first. Reading happens before the transaction, so a slow model never holds the state. Films the rated
catalogue lacks are recognised through ``llmrec.chat.outside`` when the data folder has ``movies_all.csv``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from llmrec.chat import actions, policy
from llmrec.chat.outside import OutsideFilms, outside_films
from llmrec.chat.present import BUTTONS, GENRE_CHIPS, MAX_MESSAGE, WELCOME, Card, Reply
from llmrec.chat.readers import RuleUnderstander, popularity_of
from llmrec.chat.state import ChatState
from llmrec.chat.store import ProfileStore, StaleStateError
from llmrec.chat.understanding import ReadingContext, Understanding
from llmrec.data.item_text import clean_text
from llmrec.errors import DataError
from llmrec.types import Item, UserProfile

__all__ = ["BUTTONS", "MAX_MESSAGE", "WELCOME", "Card", "Conversation", "ProfileEdit", "Reply"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProfileEdit:
    """What the profile panel submits: the items kept in each list and the stated limits. Themes, people,
    avoided themes and films outside the rated catalogue are kept as they are when ``None`` (a panel that does
    not show them)."""

    liked: tuple[str, ...] = ()
    disliked: tuple[str, ...] = ()
    seen: tuple[str, ...] = ()
    preferences: tuple[str, ...] = ()
    wanted_genres: tuple[str, ...] = ()
    avoided_genres: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None
    topics: tuple[str, ...] | None = None
    people: tuple[str, ...] | None = None
    avoided_keywords: tuple[str, ...] | None = None
    outside_liked: tuple[str, ...] | None = None  # films outside the rated catalogue kept (None: all kept)
    outside_disliked: tuple[str, ...] | None = None


class Conversation:
    """A chat session for ``user_id``; safe to run beside other sessions of other users (or the same one)."""

    def __init__(self, recommender: Any, store: ProfileStore, user_id: str, k: int = 5,
                 stream_explanations: bool = False) -> None:  # fmt: skip
        """``stream_explanations``: lists come at once with template sentences, and ``stream_explanation`` then
        writes each card's sentence with the recommender's own explainer (the app); otherwise every reply carries
        the explainer's final sentences (the terminal chat)."""
        if not user_id or not user_id.strip():
            raise DataError("a chat needs a user id; pass --user ID or let the app create one")
        self.rec = recommender
        self.store = store
        self.user_id = user_id.strip()
        self.k = k
        self.stream_explanations = stream_explanations

    # -- what the dialogue works with ----------------------------------------------------------------
    @property
    def items(self) -> Any:
        return self.rec.items

    @cached_property
    def base_profile(self) -> UserProfile:
        """A returning user's history from the data set (a newcomer gets an empty profile)."""
        profile = self.rec.profile(user=self.user_id)
        return profile if profile.history else UserProfile(user_id=self.user_id)

    @cached_property
    def popularity(self) -> dict[str, int]:
        return popularity_of(self.rec.dataset)

    @cached_property
    def outside_finder(self) -> OutsideFilms | None:
        """The films outside the rated catalogue (None: no ``movies_all.csv`` in the data folder); not loaded yet."""
        return outside_films(self.rec)

    @property
    def outside(self) -> Mapping[str, Item]:
        """Films outside the rated catalogue by id (empty when off); loads on the first look-up."""
        return self.outside_finder if self.outside_finder is not None else {}

    @cached_property
    def understander(self) -> Any:
        """The recommender's understander (``understanding.kind`` in the config), or rules for a recommender
        without one."""
        found = getattr(self.rec, "understander", None)
        return found if found is not None else RuleUnderstander(self.items, lambda: self.popularity)

    def load(self) -> tuple[ChatState, int | None]:
        stored = self.store.load(self.user_id)
        if stored is None:
            state = ChatState(self.user_id)
            if self.base_profile.history:
                state.onboarding = "done"
            return state, None
        return ChatState.from_json(stored.data), stored.version

    def state(self) -> ChatState:
        return self.load()[0]

    def profile(self, state: ChatState | None = None) -> UserProfile:
        state = state or self.state()
        outside = self.outside if state.outside_liked or state.outside_disliked else None
        return state.to_profile(self.base_profile, outside)

    @property
    def streams(self) -> bool:
        """Whether shown cards get their sentence written afterwards by ``stream_explanation``."""
        return self.stream_explanations and callable(getattr(self.rec.explainer, "stream", None))

    def _transact(self, change: Callable[[ChatState], Reply]) -> Reply:
        """Apply ``change`` to fresh state and save it; retried on fresh data if another tab wrote first."""
        for attempt in range(3):
            state, version = self.load()
            reply = change(state)
            try:
                self.store.save(self.user_id, state.to_json(), version)
                return reply
            except StaleStateError:
                log.info("state of %s changed concurrently; retrying (%d)", self.user_id, attempt + 1)
        raise StaleStateError(f"user {self.user_id!r} is changing too fast in several sessions; try again")

    # -- messages ----------------------------------------------------------------------------------------
    def start(self) -> Reply:
        state, _ = self.load()
        if state.onboarding == "done" or self.base_profile.history:
            name = "Welcome back!" if self.base_profile.history or state.liked or state.outside_liked else "Hi!"
            return Reply(f"{name} Ask me for recommendations, or tell me what you're in the mood for.",
                         chips=("Recommend something", "Something newer", "Start over"))  # fmt: skip
        return Reply(WELCOME, chips=(*GENRE_CHIPS[:8], "Skip"))

    def context(self, state: ChatState) -> ReadingContext:
        """What a reader sees besides the message: the cards on screen, the film in focus, the last reply."""
        items = self.items
        cards = tuple((n, s.item_id, s.title) for n, s in enumerate(state.current(), 1))
        focus = state.last_item if state.last_item in items else None
        last = next((t.text for t in reversed(self.store.turns(self.user_id, limit=3)) if t.role == "assistant"), "")
        options = state.pending.get("options", [])
        films = actions.films(self)  # the rated catalogue first; outside ids only for outside options
        pending = tuple((i, films[i].display_title) for i in options if i in films)
        return ReadingContext(cards=cards, focus=focus, focus_title=items[focus].display_title if focus else "",
                              last_reply=last, pending=pending, outside=self.outside_finder)  # fmt: skip

    def understand(self, text: str) -> Understanding:
        """How the next message would be read, given the stored state (nothing changes)."""
        return self.understander.read(text, self.context(self.state()))

    def handle(self, message: str) -> Reply:
        raw = message or ""
        text = clean_text(raw[: MAX_MESSAGE * 2], MAX_MESSAGE)  # no control characters or lone surrogates
        if not text:
            return Reply("Say something like \"I loved Alien\", \"funny 90s movies\" or \"recommend\".",
                         chips=("Recommend something", "Help"))  # fmt: skip
        note = ()
        if len(" ".join(raw.split())) > MAX_MESSAGE:
            note = (f"your message was long; I read the first {MAX_MESSAGE} characters",)
        understood = self.understand(text)
        self.store.append_turn(self.user_id, "user", text)
        if "forget" in understood.kinds:
            return dataclasses.replace(self.forget(), understood=understood)
        if "quit" in understood.kinds:
            if understood.states_taste:  # "loved it, bye!": keep what was said
                quiet = dataclasses.replace(understood, requests=())
                self._transact(lambda state: policy.remember(self, state, quiet))
            reply = Reply("Bye! Your profile is saved for next time.", ended=True, understood=understood)
        else:
            reply = self._transact(lambda state: policy.respond(self, state, understood))
        if note:
            reply = dataclasses.replace(reply, notes=reply.notes + note)
        self.store.append_turn(self.user_id, "assistant", reply.text)
        return reply

    # -- buttons and the profile panel -------------------------------------------------------------------
    def feedback(self, item_id: str, kind: str) -> Reply:
        """A button on a card: ``like``, ``dislike`` or ``seen``; the next recommendations follow at once."""
        if kind not in actions.FEEDBACK:
            raise DataError(f"unknown feedback {kind!r}; use like, dislike or seen")
        return self._transact(lambda state: actions.button_feedback(self, state, item_id, kind))

    def act(self, item_id: str, kind: str) -> Reply:
        """A card button (``why``, ``like``, ``dislike`` or ``seen`` on ``item_id``), recorded in the transcript as
        what the user asked and what was answered."""
        if kind not in BUTTONS:
            raise DataError(f"unknown card action {kind!r}; use {', '.join(BUTTONS)}")
        title = self.items[item_id].display_title if item_id in self.items else item_id
        self.store.append_turn(self.user_id, "user", BUTTONS[kind].format(title=title))
        reply = self.why(item_id) if kind == "why" else self.feedback(item_id, kind)
        self.store.append_turn(self.user_id, "assistant", reply.text)
        return reply

    def why(self, item_id: str) -> Reply:
        return self._transact(lambda state: actions.why(self, state, item_id))

    def edit_profile(self, edit: ProfileEdit) -> Reply:
        """The profile panel's edits: keep only the listed liked / disliked / seen items, replace the stated
        preferences, genres (catalogue genres only; avoiding wins) and the year range (swapped when reversed)."""
        known = {g for item in self.items.values() for g in item.genres}
        avoided = sorted({g for g in edit.avoided_genres if g in known})
        lo, hi = edit.year_min, edit.year_max
        if lo and hi and lo > hi:
            lo, hi = hi, lo

        def change(state: ChatState) -> Reply:
            for name in ("liked", "disliked", "seen"):
                kept = set(getattr(edit, name))
                setattr(state, name, [i for i in getattr(state, name) if i in kept])
            lines = [line.strip()[:300] for line in edit.preferences if line.strip()]
            state.preferences = lines[:20]
            state.wanted_genres = [g for g in dict.fromkeys(edit.wanted_genres) if g in known and g not in avoided]
            state.avoided_genres = avoided
            state.year_min, state.year_max = lo, hi
            for name in ("topics", "people", "avoided_keywords"):
                values = getattr(edit, name)
                if values is not None:
                    setattr(state, name, [v.strip()[:80] for v in dict.fromkeys(values) if v.strip()][:20])
            for name in ("outside_liked", "outside_disliked"):
                values = getattr(edit, name)
                if values is not None:
                    setattr(state, name, [i for i in getattr(state, name) if i in set(values)])
            return Reply("Saved your profile. Your next recommendations will follow it.",
                         chips=("Recommend something",))  # fmt: skip

        reply = self._transact(change)
        self.store.append_turn(self.user_id, "assistant", reply.text)
        return reply

    def stream_explanation(self, item_id: str) -> Iterator[tuple[str, str]]:
        """Write a shown item's explanation with the recommender's streaming explainer (the LLM), yielding
        ``(text so far, source)``; the final text (``llm`` or ``template-fallback``) becomes what "why?" quotes.
        Nothing is yielded when the explainer does not stream or the item was not shown."""
        shown = self.state().shown_item(item_id)
        if shown is None or item_id not in self.items or not self.streams:
            return
        final: tuple[str, str] | None = None
        for text, source in self.rec.explainer.stream(self.items[item_id], shown.evidence_value()):
            final = (text, source)
            yield text, source
        if final is None or final[1] == "streaming":
            return

        def record(state: ChatState) -> Reply:
            entry = state.shown_item(item_id)
            if entry is not None:
                entry.explanation, entry.explanation_source = final
            return Reply("")

        self._transact(record)

    def forget(self) -> Reply:
        """Delete this user's state and transcript everywhere; the session starts over as a newcomer."""
        removed = self.store.forget(self.user_id)  # the vector store holds items only, nothing about users
        log.info("forgot user %s (%d rows)", self.user_id, removed)
        return Reply("Done: I deleted your profile and our conversation. We can start fresh whenever you like.",
                     chips=(*GENRE_CHIPS[:6], "Skip"))  # fmt: skip
