"""What the dialogue can do to a user's state: recommend, ask the next onboarding question, answer "why?"
and "why not?", refine, and take feedback. Each action changes the ``ChatState`` it is given and returns
the ``Reply`` part it produces; ``llmrec.chat.policy`` decides which actions a message calls for.

``World`` is what the actions need from the conversation: the recommender, the catalogue and its
popularity, the films outside it (named by users, never recommended: ``llmrec.chat.outside``), the
data-set profile of a returning user, how many picks to show, and whether explanations stream in
afterwards.
"""

from __future__ import annotations

import dataclasses
from collections import ChainMap
from collections.abc import Mapping
from typing import Any, Protocol

from llmrec.chat import onboarding
from llmrec.chat import present as show
from llmrec.chat.intents import VIOLENT_GENRES
from llmrec.chat.present import AFTER_RECS, GENRE_CHIPS, Reply
from llmrec.chat.state import ChatState
from llmrec.errors import DataError
from llmrec.types import Constraints, Item, UserProfile

VIOLENT_KEYWORDS = ("violence", "gore", "gory", "brutal", "murder", "serial killer", "torture", "blood")
FEEDBACK = {"like": "liked", "dislike": "disliked", "seen": "seen"}


class World(Protocol):
    rec: Any
    k: int

    @property
    def items(self) -> Mapping[str, Item]: ...

    @property
    def outside(self) -> Mapping[str, Item]: ...

    @property
    def popularity(self) -> Mapping[str, int]: ...

    @property
    def base_profile(self) -> UserProfile: ...

    @property
    def streams(self) -> bool: ...

    def profile(self, state: ChatState | None = None) -> UserProfile: ...


# Recommending ---------------------------------------------------------------------------------------------
def recommend(world: World, state: ChatState, prefix: str) -> Reply:
    """Recommendations for the state's profile (its constraints relaxed when nothing meets them all)."""
    profile = world.profile(state)
    explain = not world.streams  # streamed sentences replace the template ones card by card
    result = world.rec.recommend(profile, k=world.k, explain=explain)
    recs, notes = result.items, result.notes
    if not recs and profile.constraints:
        relaxed = world.rec.recommend(dataclasses.replace(profile, constraints=Constraints()), k=world.k,
                                      explain=explain)  # fmt: skip
        if relaxed.items:
            recs = relaxed.items
            prefix += " Nothing matched every limit you gave, so I relaxed them:"
    if not recs:
        state.onboarding = "start" if profile.is_newcomer else state.onboarding
        return Reply("I need a bit more to go on: name a film you like or describe what you want.",
                     chips=GENRE_CHIPS[:6], notes=notes)  # fmt: skip
    state.onboarding = "done"
    state.round += 1
    state.shown += [show.shown(r, state.round) for r in recs]
    state.shown = state.shown[-60:]
    state.last_item = None
    cards = tuple(show.card(r, n) for n, r in enumerate(recs, 1))
    if any("failed" in n for n in notes):
        prefix += " (The language model had a problem, so these are in retrieval order.)"
    return Reply(show.listing(prefix, cards), cards=cards, chips=AFTER_RECS, notes=notes)


def next_step(world: World, state: ChatState, prefix: str) -> Reply:
    """Ask the next onboarding question, or recommend when the profile is good enough."""
    if state.onboarding != "done" and onboarding.should_ask(state):
        if state.onboarding == "start" and not state.wanted_genres and not state.preferences and not state.topics:
            state.onboarding = "genres"
            state.questions_asked += 1
            return Reply(f"{prefix} What kind of movie are you in the mood for?".strip(),
                         chips=(*GENRE_CHIPS, "Skip"))  # fmt: skip
        pool = [c.item_id for c in candidate_pool(world, state)]
        item_id = onboarding.next_item_question(state, world.items, world.popularity, pool)
        if item_id is not None:
            state.onboarding = "items"
            state.questions_asked += 1
            state.asked_items.append(item_id)
            state.last_item = item_id
            item = world.items[item_id]
            return Reply(f"{prefix} Have you seen {item.display_title} ({', '.join(item.genres[:3])})? "
                         "Did you like it?".strip(), chips=onboarding.ITEM_CHIPS)  # fmt: skip
    return recommend(world, state, f"{prefix} Here are some picks for you:".strip())


def candidate_pool(world: World, state: ChatState) -> list:
    profile = world.profile(state)
    if profile.is_newcomer and not profile.stated_preferences:
        return []
    try:
        return world.rec.candidates(profile, 60)[0]
    except DataError:
        return []


# Feedback -------------------------------------------------------------------------------------------------
def mark(state: ChatState, item_id: str, stance: str) -> None:
    """Put ``item_id`` in the list for ``stance`` (liked, disliked, seen); it leaves the other two."""
    for bucket in (state.liked, state.disliked, state.seen):
        if item_id in bucket:
            bucket.remove(item_id)
    {"liked": state.liked, "disliked": state.disliked, "seen": state.seen}[stance].append(item_id)


def mark_outside(state: ChatState, item_id: str, stance: str) -> bool:
    """Keep a film outside the rated catalogue as liked or disliked (it leaves the other list); other stances
    (seen, not seen) change nothing, since such a film is never recommended. Returns whether it was kept."""
    if stance not in ("liked", "disliked"):
        return False
    for bucket in (state.outside_liked, state.outside_disliked):
        if item_id in bucket:
            bucket.remove(item_id)
    (state.outside_liked if stance == "liked" else state.outside_disliked).append(item_id)
    return True


def films(world: World) -> Mapping[str, Item]:
    """Every film a user can name: the rated catalogue, then the films outside it (looked at only for their ids)."""
    return ChainMap(world.items, world.outside)  # type: ignore[arg-type]  # only read


def button_feedback(world: World, state: ChatState, item_id: str, kind: str) -> Reply:
    """A like / dislike / seen button on a card; the next recommendations follow at once."""
    if item_id not in world.items:
        return Reply(f"I don't know item {item_id!r}; that card may be out of date. Ask me to recommend again.")
    stale = state.shown_item(item_id) is None
    mark(state, item_id, FEEDBACK[kind])
    state.last_item = item_id
    title = world.items[item_id].display_title
    verb = {"like": "Glad you like", "dislike": "Noted, not for you:", "seen": "Marked as seen:"}[kind]
    prefix = f"{verb} {title}." + (" (That card was from an earlier list.)" if stale else "")
    if state.onboarding != "done":
        return next_step(world, state, prefix)
    return recommend(world, state, prefix + " Updated picks:")


# Why and why not ------------------------------------------------------------------------------------------
def why(world: World, state: ChatState, item_id: str) -> Reply:
    if item_id not in world.items and item_id in world.outside:  # named by the user, never recommended
        kept = state.keeps_outside(item_id)
        return Reply(show.outside_not_recommended(world.outside[item_id], kept), chips=("Recommend something",))
    entry = state.shown_item(item_id)
    state.last_item = item_id
    if entry is None or item_id not in world.items:
        title = world.items[item_id].display_title if item_id in world.items else item_id
        return Reply(show.not_shown_text(title))
    return Reply(show.why_text(entry, world.items[item_id]), chips=AFTER_RECS[1:])


def why_not(world: World, state: ChatState, item_id: str) -> Reply:
    if item_id not in world.items:
        known = world.outside.get(item_id)
        kept = state.keeps_outside(item_id)
        text = show.outside_not_recommended(known, kept) if known else "I don't know that film; ask about another."
        return Reply(text, chips=("Recommend something",))
    item = world.items[item_id]
    state.last_item = item_id
    reasons = []
    if item_id in state.seen or item_id in {e.item_id for e in world.base_profile.history}:
        reasons.append("you've already seen it")
    if item_id in state.disliked:
        reasons.append("you told me it's not for you")
    if item_id in state.liked:
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
        _, where = world.rec.why(world.profile(state), item_id)
        liked = [world.items[i].display_title for i in state.liked[-2:] if i in world.items]
        basis = f" compared with what you liked ({', '.join(liked)})" if liked else ""
        place = "it wasn't among the films closest to your taste" if "not among" in where else "it ranked lower"
        reasons.append(f"{place}{basis}")
    return Reply(f"I didn't pick {item.display_title} because " + "; ".join(reasons) + ".",
                 chips=("More like it", "Recommend something"))  # fmt: skip


# Refining -------------------------------------------------------------------------------------------------
def refine(world: World, state: ChatState, kind: str) -> str:
    """Change the state's limits for a refinement; returns the words that say what changed."""
    years = sorted(world.items[s.item_id].year or 0 for s in state.current() if s.item_id in world.items) or [0]
    middle = years[len(years) // 2]
    if kind == "newer":
        state.year_min, state.year_max = (middle + 1 if middle else 2000), None
        return f"films after {state.year_min - 1}"
    if kind == "older":
        state.year_min, state.year_max = None, (middle - 1 if middle else 1990)
        return f"films before {state.year_max + 1}"
    if kind in ("less_violent", "lighter"):
        state.avoided_genres = list(dict.fromkeys([*state.avoided_genres, *VIOLENT_GENRES]))
        state.wanted_genres = [g for g in state.wanted_genres if g not in VIOLENT_GENRES]
        state.avoided_keywords = list(dict.fromkeys([*state.avoided_keywords, *VIOLENT_KEYWORDS]))
        if kind == "lighter" and "Comedy" not in state.wanted_genres:
            state.wanted_genres.append("Comedy")
        return "something lighter" if kind == "lighter" else "less violence"
    if kind == "darker":
        state.wanted_genres = list(dict.fromkeys([*state.wanted_genres, "Thriller", "Crime"]))
        state.avoided_genres = [g for g in state.avoided_genres if g not in ("Thriller", "Crime")]
        return "something darker"
    if kind == "shorter":
        state.wanted_genres = list(dict.fromkeys([*state.wanted_genres, "Animation", "Comedy"]))
        return "shorter films (I don't have running times, so genres that tend to run short: animation, comedy)"
    if kind == "different":
        state.seen.extend(s.item_id for s in state.current() if s.item_id not in state.seen)
        return "different picks"
    return ""


def reset(state: ChatState) -> None:
    """Start over: everything the chat learnt goes (the stored transcript stays until "forget me")."""
    fresh = ChatState(state.user_id)
    for name, value in vars(fresh).items():
        if name != "user_id":
            setattr(state, name, value)
