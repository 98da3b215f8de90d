"""The conversation engine: one user's session over the shared ``Recommender``. No UI code here.

``Conversation.handle(message)`` reads the user's state from the store, understands the message,
changes the profile, recommends or answers, saves the state and the turn, and returns a ``Reply``
(text, recommendation cards, quick-reply chips). Buttons in an app call ``feedback`` and ``why``
directly with an item id. Every reply is built from the catalogue and recorded evidence only.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from llmrec.chat import onboarding
from llmrec.chat.intents import VIOLENT_GENRES
from llmrec.chat.mentions import content_words, mention_feeling, spot_titles
from llmrec.chat.rules import Intent, classify
from llmrec.chat.state import ChatState, Shown
from llmrec.chat.store import ProfileStore, StaleStateError
from llmrec.data.item_text import clean_text
from llmrec.errors import DataError
from llmrec.evidence import evidence_lines
from llmrec.safety import sanitize_output
from llmrec.types import Item, Recommendation, UserProfile

log = logging.getLogger(__name__)

MAX_MESSAGE = 2000
VIOLENT_KEYWORDS = ("violence", "gore", "gory", "brutal", "murder", "serial killer", "torture", "blood")
AFTER_RECS = ("Why the first one?", "More like the first one", "Something newer", "Something lighter", "Start over")
WELCOME = ("Hi! I recommend movies. Tell me what you're in the mood for — pick a few genres below, name a film "
           "you love, or describe it (e.g. \"slow sci-fi, nothing gory\"). Type \"skip\" any time.")  # fmt: skip


@dataclass(frozen=True)
class Card:
    item_id: str
    title: str
    year: int | None
    genres: tuple[str, ...]
    explanation: str
    explanation_source: str
    position: int


BUTTONS = {"why": "Why {title}?", "like": "👍 I like {title}", "dislike": "👎 {title} isn't for me",
           "seen": "I've seen {title}"}  # card buttons, as the transcript records them


@dataclass(frozen=True)
class ProfileEdit:
    """What the profile panel submits: the items kept in each list and the stated limits."""

    liked: tuple[str, ...] = ()
    disliked: tuple[str, ...] = ()
    seen: tuple[str, ...] = ()
    preferences: tuple[str, ...] = ()
    wanted_genres: tuple[str, ...] = ()
    avoided_genres: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None


@dataclass(frozen=True)
class Reply:
    text: str
    cards: tuple[Card, ...] = ()
    chips: tuple[str, ...] = ()
    ended: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


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

    # -- state ------------------------------------------------------------------------------------
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
        import numpy as np

        ids, counts = np.unique(self.rec.dataset.interactions.item_ids, return_counts=True)
        return dict(zip(ids.tolist(), counts.tolist()))

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
        return (state or self.state()).to_profile(self.base_profile)

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

    # -- entry points -----------------------------------------------------------------------------
    def start(self) -> Reply:
        state, _ = self.load()
        if state.onboarding == "done" or self.base_profile.history:
            name = "Welcome back!" if self.base_profile.history or state.liked else "Hi!"
            return Reply(f"{name} Ask me for recommendations, or tell me what you're in the mood for.",
                         chips=("Recommend something", "Something newer", "Start over"))  # fmt: skip
        return Reply(WELCOME, chips=(*onboarding.GENRE_CHIPS[:8], "Skip"))

    def handle(self, message: str) -> Reply:
        raw = message or ""
        text = clean_text(raw[: MAX_MESSAGE * 2], MAX_MESSAGE)  # no control characters or lone surrogates
        if not text:
            return Reply("Say something like \"I loved Alien\", \"funny 90s movies\" or \"recommend\".",
                         chips=("Recommend something", "Help"))  # fmt: skip
        note = ()
        if len(" ".join(raw.split())) > MAX_MESSAGE:
            note = (f"your message was long; I read the first {MAX_MESSAGE} characters",)
        self.store.append_turn(self.user_id, "user", text)
        intent = classify(text)
        if intent.kind == "forget":
            reply = self.forget()
        elif intent.kind == "quit":
            reply = Reply("Bye! Your profile is saved for next time.", ended=True)
        else:
            reply = self._transact(lambda state: self._dispatch(state, intent))
        if note:
            reply = dataclasses.replace(reply, notes=reply.notes + note)
        if intent.kind != "forget":
            self.store.append_turn(self.user_id, "assistant", reply.text)
        return reply

    def feedback(self, item_id: str, kind: str) -> Reply:
        """A button on a card: ``like``, ``dislike`` or ``seen``; the next recommendations follow at once."""
        if kind not in ("like", "dislike", "seen"):
            raise DataError(f"unknown feedback {kind!r}; use like, dislike or seen")
        return self._transact(lambda state: self._feedback(state, [item_id], kind, from_button=True))

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
            return Reply("Saved your profile. Your next recommendations will follow it.",
                         chips=("Recommend something",))  # fmt: skip

        reply = self._transact(change)
        self.store.append_turn(self.user_id, "assistant", reply.text)
        return reply

    def why(self, item_id: str) -> Reply:
        return self._transact(lambda state: self._why(state, item_id))

    @property
    def streams(self) -> bool:
        """Whether shown cards get their sentence written afterwards by ``stream_explanation``."""
        return self.stream_explanations and callable(getattr(self.rec.explainer, "stream", None))

    def stream_explanation(self, item_id: str) -> Iterator[tuple[str, str]]:
        """Write a shown item's explanation with the recommender's streaming explainer (the LLM), yielding
        ``(text so far, source)``; the final text (``llm`` or ``template-fallback``) becomes what "why?" quotes.
        Nothing is yielded when the explainer does not stream or the item was not shown."""
        shown = self.state().shown_item(item_id)
        if shown is None or item_id not in self.items or not self.streams:
            return
        explainer = self.rec.explainer
        final: tuple[str, str] | None = None
        for text, source in explainer.stream(self.items[item_id], shown.evidence_value()):
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
                     chips=(*onboarding.GENRE_CHIPS[:6], "Skip"))  # fmt: skip

    # -- dispatch ---------------------------------------------------------------------------------
    def _dispatch(self, state: ChatState, intent: Intent) -> Reply:
        if state.pending and (choice := self._pending_choice(state, intent)) is not None:
            action = state.pending["action"]
            state.pending = {}
            if choice == "none":
                return Reply("No problem. Which title did you mean? Add the year to be precise.")
            return self._feedback(state, [choice], action)
        state.pending = {}
        answering = state.onboarding == "items" and state.last_item and not (intent.titles or intent.ordinals)
        if answering and intent.kind in ("like", "dislike", "seen", "skip"):
            return self._answer_item_question(state, intent)
        if intent.kind == "restart":
            fresh = ChatState(self.user_id)
            for name in ("liked", "disliked", "seen", "preferences", "wanted_genres", "avoided_genres", "shown",
                         "avoided_keywords", "asked_items"):  # fmt: skip
                setattr(state, name, getattr(fresh, name))
            state.year_min = state.year_max = None
            state.questions_asked, state.onboarding, state.round, state.last_item = 0, "start", 0, None
            return Reply("Fresh start! " + WELCOME, chips=(*onboarding.GENRE_CHIPS[:8], "Skip"))
        if intent.kind == "skip":
            state.onboarding = "done"
            return self._recommend(state, "Sure, here's a start:")
        if intent.kind == "help":
            return Reply("I recommend movies from what you like. Name films you loved, describe a mood, ask "
                         "\"why\" about any pick, say \"seen it\" or \"not for me\", or \"something newer\". "
                         "\"Forget me\" deletes everything about you.", chips=AFTER_RECS[:3])  # fmt: skip
        if intent.kind == "why_not":
            return self._why_not(state, intent)
        if intent.kind == "why":
            target = self._target(state, intent)
            if isinstance(target, Reply):
                return target
            return self._why(state, target)
        if intent.kind in ("like", "dislike", "seen"):
            return self._feedback_intent(state, intent)
        if intent.kind == "refine":
            return self._refine(state, intent)
        if intent.kind == "preference":
            self._apply_preference(state, intent)
            if mentioned := self._mentioned(intent.text):  # "Shrek (2001) is so funny"
                return self._react(state, mentioned, mention_feeling(intent.text))
            return self._next(state, "Got it.")
        if intent.kind == "recommend":
            state.onboarding = "done"
            return self._recommend(state, "Here you go:")
        # Anything else: a film named in passing says how the user feels about it; else steer back helpfully.
        if intent.titles:
            return self._feedback_intent(state, dataclasses.replace(intent, kind="like"))
        if mentioned := self._mentioned(intent.text):
            return self._react(state, mentioned, mention_feeling(intent.text))
        return Reply("I'm a movie recommender, so I'm best at that! Tell me a film you love or a mood "
                     "(\"something funny from the 90s\"), or ask me to recommend.",
                     chips=("Recommend something", *onboarding.GENRE_CHIPS[:4]))  # fmt: skip

    # -- onboarding -------------------------------------------------------------------------------
    def _next(self, state: ChatState, prefix: str) -> Reply:
        """Ask the next onboarding question, or recommend when the profile is good enough."""
        if state.onboarding != "done" and onboarding.should_ask(state):
            if state.onboarding == "start" and not state.wanted_genres and not state.preferences:
                state.onboarding = "genres"
                state.questions_asked += 1
                return Reply(f"{prefix} What kind of movie are you in the mood for?",
                             chips=(*onboarding.GENRE_CHIPS, "Skip"))  # fmt: skip
            pool = [c.item_id for c in self._pool(state)]
            item_id = onboarding.next_item_question(state, self.items, self.popularity, pool)
            if item_id is not None:
                state.onboarding = "items"
                state.questions_asked += 1
                state.asked_items.append(item_id)
                state.last_item = item_id
                item = self.items[item_id]
                return Reply(f"{prefix} Have you seen {item.display_title} ({', '.join(item.genres[:3])})? "
                             "Did you like it?", chips=onboarding.ITEM_CHIPS)  # fmt: skip
        state.onboarding = "done"
        return self._recommend(state, f"{prefix} Here are some picks for you:")

    def _pool(self, state: ChatState) -> list:
        profile = self.profile(state)
        if profile.is_newcomer and not profile.stated_preferences:
            return []
        try:
            return self.rec.candidates(profile, 60, self._filter(state))[0]
        except DataError:
            return []

    def _answer_item_question(self, state: ChatState, intent: Intent) -> Reply:
        item_id = state.last_item
        lower = intent.text.lower()
        if intent.kind == "like":
            state.liked.append(item_id)
        elif intent.kind == "dislike":
            state.disliked.append(item_id)
        elif intent.kind == "seen" or "haven't" in lower or "not seen" in lower:
            state.seen.append(item_id)
        state.last_item = None
        if "just recommend" in lower:
            state.onboarding = "done"
        return self._next(state, "Thanks!")

    # -- understanding titles ---------------------------------------------------------------------
    def _resolve(self, state: ChatState, span: str, action: str) -> str | Reply:
        from llmrec.profile import resolve_title

        try:
            match = resolve_title(span, self.items, self.popularity)
        except DataError as exc:
            closest = str(exc).split("closest:")[-1].strip() if "closest:" in str(exc) else ""
            return Reply(f"I couldn't find \"{sanitize_output(span, 80)}\" in the catalogue."
                         + (f" Did you mean {closest}?" if closest else ""))  # fmt: skip
        if "also matches" in match.note:
            options = self._alternatives(span, match.item_id)
            if len(options) > 1:
                state.pending = {"action": action, "options": options}
                labels = [self.items[i].display_title for i in options]
                return Reply(f"Which one do you mean: {'; '.join(labels)}?", chips=(*labels, "None of these"))
        return match.item_id

    def _alternatives(self, span: str, best: str) -> list[str]:
        from llmrec.profile import normalise_title

        wanted = normalise_title(span.split(" (")[0])
        same = [i for i, it in self.items.items() if normalise_title(it.title) == wanted]
        same.sort(key=lambda i: -self.popularity.get(i, 0))
        return ([best] + [i for i in same if i != best])[:5]

    def _pending_choice(self, state: ChatState, intent: Intent) -> str | None:
        options = state.pending.get("options", [])
        lower = intent.text.lower()
        if "none" in lower or intent.kind in ("restart", "skip"):
            return "none"
        for item_id in options:
            item = self.items[item_id]
            if item.display_title.lower() in lower or (item.year and str(item.year) in lower):
                return item_id
        if intent.ordinals and 0 < intent.ordinals[0] <= len(options):
            return options[intent.ordinals[0] - 1]
        return None

    def _target(self, state: ChatState, intent: Intent) -> str | Reply:
        """The item a message is about: an ordinal in the last list, a named title, or the last one discussed."""
        current = state.current()
        if intent.ordinals:
            position = intent.ordinals[0]
            if not current:
                return Reply("I haven't shown you a list yet — ask me to recommend first.")
            if position == -1 or 0 < position <= len(current):
                return current[position if position == -1 else position - 1].item_id
            return Reply(f"There are only {len(current)} picks in the list; which one do you mean?")
        if intent.titles:
            return self._resolve(state, intent.titles[0], "why")
        if state.last_item:
            return state.last_item
        if current:
            return current[0].item_id
        return Reply("Which movie do you mean? Name it or say \"the second one\".")

    # -- feedback ---------------------------------------------------------------------------------
    def _feedback_intent(self, state: ChatState, intent: Intent) -> Reply:
        targets: list[str] = []
        current = state.current()
        for position in intent.ordinals:
            if current and (position == -1 or 0 < position <= len(current)):
                targets.append(current[position if position == -1 else position - 1].item_id)
        if not targets:
            for span in intent.titles:
                resolved = self._resolve(state, span, intent.kind)
                if isinstance(resolved, Reply):
                    return self._unresolved(state, intent, span, resolved)
                targets.append(resolved)
        if not targets and not intent.titles and (mentioned := self._mentioned(intent.text)):
            return self._react(state, mentioned, intent.kind)  # "The Matrix (1999) is one of my favourites"
        if not targets and intent.kind in ("seen", "dislike") and state.last_item:
            targets = [state.last_item]
        if not targets:
            if intent.genres or intent.avoid_genres:
                self._apply_preference(state, intent)
                return self._next(state, "Noted.")
            return Reply("Which movie do you mean? Name it, or say \"the second one\".")
        return self._feedback(state, targets, intent.kind)

    def _mentioned(self, text: str) -> list[str]:
        return [m.item_id for m in spot_titles(text, self.items, self.popularity)]

    def _react(self, state: ChatState, item_ids: list[str], feeling: str) -> Reply:
        if feeling == "unseen":
            names = ", ".join(self.items[i].display_title for i in item_ids)
            return self._next(state, f"Noted that you haven't seen {names}.")
        return self._feedback(state, item_ids, feeling)

    def _unresolved(self, state: ChatState, intent: Intent, span: str, failed: Reply) -> Reply:
        """A title span that matched nothing: films named elsewhere in the sentence, else (for a like) a
        description to search by — "I love adam sandler" is a taste, not a typo."""
        if "Which one do you mean" in failed.text:  # ambiguous, not missing: let the user choose
            return failed
        if mentioned := self._mentioned(intent.text):
            feeling = intent.kind if intent.kind in ("dislike", "seen") else mention_feeling(intent.text)
            return self._react(state, mentioned, feeling)
        if intent.kind != "like" or not content_words(span):
            return failed
        self._apply_preference(state, intent)
        phrase = sanitize_output(span, 80)
        if phrase.lower() not in " ".join(state.preferences).lower():
            state.preferences.append(phrase)
        closest = failed.text.partition("Did you mean ")[2].rstrip("?")
        hint = f" (closest titles: {closest})" if closest else ""
        return self._next(state, f"No film is called \"{phrase}\"{hint}, so I'll look for movies that fit that "
                                 "description.")  # fmt: skip

    def _feedback(self, state: ChatState, item_ids: list[str], kind: str, from_button: bool = False) -> Reply:
        unknown = [i for i in item_ids if i not in self.items]
        if unknown:
            return Reply(f"I don't know item {unknown[0]!r}; that card may be out of date. Ask me to recommend again.")
        stale = from_button and any(state.shown_item(i) is None for i in item_ids)
        for item_id in item_ids:
            for bucket in (state.liked, state.disliked, state.seen):
                if item_id in bucket:
                    bucket.remove(item_id)
            {"like": state.liked, "dislike": state.disliked, "seen": state.seen}[kind].append(item_id)
        state.last_item = item_ids[-1]
        names = ", ".join(self.items[i].display_title for i in item_ids)
        verb = {"like": "Glad you like", "dislike": "Noted, not for you:", "seen": "Marked as seen:"}[kind]
        prefix = f"{verb} {names}." + (" (That card was from an earlier list.)" if stale else "")
        if state.onboarding != "done":
            return self._next(state, prefix)
        return self._recommend(state, prefix + " Updated picks:")

    # -- preferences and refinement ---------------------------------------------------------------
    def _apply_preference(self, state: ChatState, intent: Intent) -> None:
        for genre in intent.genres:
            if genre not in state.wanted_genres:
                state.wanted_genres.append(genre)
            if genre in state.avoided_genres:
                state.avoided_genres.remove(genre)
        for genre in intent.avoid_genres:
            if genre not in state.avoided_genres:
                state.avoided_genres.append(genre)
            if genre in state.wanted_genres:
                state.wanted_genres.remove(genre)
        if intent.decades:
            state.year_min, state.year_max = min(intent.decades), max(intent.decades) + 9
        chips = {g.lower() for g in onboarding.GENRE_CHIPS}
        words = [w for w in intent.text.split() if w.lower() not in chips]
        if len(words) > 2 or intent.avoid_genres:
            state.preferences.append(intent.text[:300])

    def _refine(self, state: ChatState, intent: Intent) -> Reply:
        years = sorted(self.items[s.item_id].year or 0 for s in state.current()) or [0]
        middle = years[len(years) // 2]
        if intent.refine == "newer":
            state.year_min, state.year_max = (middle + 1 if middle else 2000), None
        elif intent.refine == "older":
            state.year_min, state.year_max = None, (middle - 1 if middle else 1990)
        elif intent.refine in ("less-violent", "lighter"):
            state.avoided_genres = list(dict.fromkeys([*state.avoided_genres, *VIOLENT_GENRES]))
            state.avoided_keywords = list(dict.fromkeys([*state.avoided_keywords, *VIOLENT_KEYWORDS]))
            if intent.refine == "lighter" and "Comedy" not in state.wanted_genres:
                state.wanted_genres.append("Comedy")
        elif intent.refine == "darker":
            state.wanted_genres = list(dict.fromkeys([*state.wanted_genres, "Thriller", "Crime"]))
            state.avoided_genres = [g for g in state.avoided_genres if g not in ("Thriller", "Crime")]
        elif intent.refine == "shorter":
            state.wanted_genres = list(dict.fromkeys([*state.wanted_genres, "Animation", "Comedy"]))
            self._apply_preference(state, intent)
            state.onboarding = "done"
            return self._recommend(state, "I don't have running times in this catalogue, so here are picks from "
                                          "genres that tend to run short (animation, comedy):")  # fmt: skip
        elif intent.refine == "more-like":
            target = self._target(state, intent)
            if isinstance(target, Reply):
                return target
            if target not in state.liked:
                state.liked.append(target)
            state.onboarding = "done"
            return self._recommend(state, f"More like {self.items[target].display_title}:")
        elif intent.refine == "different":
            state.seen.extend(s.item_id for s in state.current() if s.item_id not in state.seen)
        self._apply_preference(state, intent)
        state.onboarding = "done"
        return self._recommend(state, "Adjusted:")

    def _filter(self, state: ChatState) -> Callable[[Item], bool] | None:
        avoided, wanted = set(state.avoided_genres), set(state.wanted_genres)
        keywords = tuple(state.avoided_keywords)
        lo, hi = state.year_min, state.year_max
        if not (avoided or keywords or lo or hi or wanted):
            return None

        def keep(item: Item) -> bool:
            if avoided & set(item.genres):
                return False
            text = " ".join((*item.keywords, *item.tags)).lower()
            if any(k in text for k in keywords):
                return False
            if (lo and (item.year or 0) < lo) or (hi and (item.year or 9999) > hi):
                return False
            return not wanted or bool(wanted & set(item.genres))

        return keep

    # -- recommending and explaining --------------------------------------------------------------
    def _recommend(self, state: ChatState, prefix: str) -> Reply:
        profile = self.profile(state)
        explain = not self.streams  # streamed sentences replace the template ones card by card
        result = self.rec.recommend(profile, k=self.k, keep=self._filter(state), explain=explain)
        recs = result.items
        if not recs and self._filter(state) is not None:
            relaxed = self.rec.recommend(profile, k=self.k, explain=explain)
            if relaxed.items:
                recs = relaxed.items
                prefix += " Nothing matched every constraint, so I relaxed them:"
        if not recs:
            state.onboarding = "start" if profile.is_newcomer else state.onboarding
            return Reply("I need a bit more to go on: name a film you like or describe what you want.",
                         chips=onboarding.GENRE_CHIPS[:6], notes=result.notes)  # fmt: skip
        state.round += 1
        state.shown += [self._shown(r, state.round) for r in recs]
        state.shown = state.shown[-60:]
        state.last_item = None
        cards = tuple(self._card(r, n) for n, r in enumerate(recs, 1))
        failed = any("failed" in n for n in result.notes)
        text = prefix + (" (The language model had a problem, so these are in retrieval order.)" if failed else "")
        lines = [f"{c.position}. {c.title} — {c.explanation}" for c in cards]
        return Reply(text + "\n" + "\n".join(lines), cards=cards, chips=AFTER_RECS, notes=result.notes)

    @staticmethod
    def _shown(rec: Recommendation, round_: int) -> Shown:
        return Shown(rec.item.item_id, rec.item.display_title, rec.explanation, rec.explanation_source,
                     dataclasses.asdict(rec.evidence), float(rec.score), list(rec.sources), round_)  # fmt: skip

    @staticmethod
    def _card(rec: Recommendation, position: int) -> Card:
        return Card(rec.item.item_id, rec.item.display_title, rec.item.year, rec.item.genres,
                    sanitize_output(rec.explanation), rec.explanation_source, position)  # fmt: skip

    def _why(self, state: ChatState, item_id: str) -> Reply:
        shown = state.shown_item(item_id)
        state.last_item = item_id
        if shown is None:
            title = self.items[item_id].display_title if item_id in self.items else item_id
            return Reply(f"I haven't recommended {title} to you, so there's no recorded reason. Ask \"why not "
                         f"{title}?\" to hear what in your profile led away from it.")  # fmt: skip
        item = self.items[item_id]
        facts = evidence_lines(item, shown.evidence_value())
        scores = ", ".join(f"{name} {score:.3f}" for name, score in shown.evidence.get("stage_scores", []))
        text = f"I recommended {shown.title} because: {shown.explanation}"
        if facts:
            text += "\nWhat I recorded when I picked it:\n" + "\n".join(f"- {f}" for f in facts)
        if scores:
            text += f"\n- scores: {scores}"
        return Reply(text, chips=AFTER_RECS[1:])

    def _why_not(self, state: ChatState, intent: Intent) -> Reply:
        if not intent.titles:
            return Reply("Why not which movie? Name it, e.g. \"why not Alien?\"")
        resolved = self._resolve(state, intent.titles[0], "why")
        if isinstance(resolved, Reply):
            return resolved
        item = self.items[resolved]
        state.last_item = resolved
        reasons = []
        if resolved in state.seen or resolved in {e.item_id for e in self.base_profile.history}:
            reasons.append("you've already seen it")
        if resolved in state.disliked:
            reasons.append("you told me it's not for you")
        if resolved in state.liked:
            reasons.append("you told me you liked it, so I don't recommend it again")
        avoided = set(state.avoided_genres) & set(item.genres)
        if avoided:
            reasons.append(f"it is {', '.join(sorted(avoided))}, which you asked to avoid")
        if state.year_min and (item.year or 0) < state.year_min:
            reasons.append(f"it is from {item.year}, older than the {state.year_min}+ you asked for")
        if state.year_max and (item.year or 9999) > state.year_max:
            reasons.append(f"it is from {item.year}, newer than you asked for")
        wanted = set(state.wanted_genres)
        if wanted and not wanted & set(item.genres):
            reasons.append(f"it isn't {' or '.join(sorted(wanted))}")
        if not reasons:
            _, where = self.rec.why(self.profile(state), resolved)
            liked = [self.items[i].display_title for i in state.liked[-2:] if i in self.items]
            basis = f" compared with what you liked ({', '.join(liked)})" if liked else ""
            reasons.append(f"it placed lower for your profile{basis}: {where}")
        return Reply(f"I didn't pick {item.display_title} because " + "; ".join(reasons) + ".",
                     chips=("More like it", "Recommend something"))  # fmt: skip
