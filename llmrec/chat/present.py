"""What the user reads: replies, cards, quick replies, and the plain words for what was understood and why.

No model names, scores or ids reach the text: "why?" quotes the sentence recorded with the pick and the
evidence in plain words (the evidence with its scores stays in the state for a details view). Titles
and explanations are untrusted text and are sanitised on the way out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmrec.chat.state import Shown
from llmrec.chat.understanding import Understanding
from llmrec.safety import sanitize_output
from llmrec.types import Evidence, Item, Recommendation

MAX_MESSAGE = 2000
AFTER_RECS = ("Why the first one?", "More like the first one", "Something newer", "Something lighter", "Start over")
GENRE_CHIPS = ("Comedy", "Drama", "Action", "Sci-Fi", "Animation", "Thriller", "Romance", "Horror", "Fantasy",
               "Crime")  # fmt: skip
WELCOME = ("Hi! I recommend movies. Tell me what you're in the mood for — pick a few genres below, name a film "
           "you love, or describe it (e.g. \"slow sci-fi, nothing gory\"). Type \"skip\" any time.")  # fmt: skip
HELP = ("I recommend movies from what you like. Name films you loved or didn't, describe a mood (\"something "
        "funny from the 90s, no horror\"), ask \"why\" about any pick or \"why not\" about any film, say \"seen it\" "
        "or \"not for me\", or \"something newer\". \"Forget me\" deletes everything about you.")  # fmt: skip
UNREAD = ("I'm a movie recommender, so I'm best at that! Tell me a film you love or a mood (\"something funny from "
          "the 90s\"), or ask me to recommend.")  # fmt: skip
BUTTONS = {"why": "Why {title}?", "like": "👍 I like {title}", "dislike": "👎 {title} isn't for me",
           "seen": "I've seen {title}"}  # card buttons, as the transcript records them


@dataclass(frozen=True)
class Card:
    item_id: str
    title: str
    year: int | None
    genres: tuple[str, ...]
    explanation: str
    explanation_source: str
    position: int


@dataclass(frozen=True)
class Reply:
    text: str
    cards: tuple[Card, ...] = ()
    chips: tuple[str, ...] = ()
    ended: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    understood: Understanding | None = None  # what the message was read as (None for buttons and greetings)


def card(rec: Recommendation, position: int) -> Card:
    return Card(rec.item.item_id, rec.item.display_title, rec.item.year, rec.item.genres,
                sanitize_output(rec.explanation), rec.explanation_source, position)  # fmt: skip


def shown(rec: Recommendation, round_: int) -> Shown:
    return Shown(rec.item.item_id, rec.item.display_title, rec.explanation, rec.explanation_source,
                 dataclasses.asdict(rec.evidence), float(rec.score), list(rec.sources), round_)  # fmt: skip


def listing(prefix: str, cards: Sequence[Card]) -> str:
    return prefix + "\n" + "\n".join(f"{c.position}. {c.title} — {c.explanation}" for c in cards)


def join(values: Sequence[str], word: str = "and") -> str:
    values = [v for v in values if v]
    if len(values) <= 1:
        return "".join(values)
    return ", ".join(values[:-1]) + f" {word} " + values[-1]


# What was understood ----------------------------------------------------------------------------------
_SAID = {"liked": "you loved {}", "disliked": "you didn't like {}", "seen": "you've seen {}",
         "not_seen": "you haven't seen {}", "interested": "you'd like to watch {}"}  # fmt: skip


def summary(u: Understanding, items: Mapping[str, Item], applied: set[str]) -> str:
    """"Got it: you loved Inception and The Dark Knight, and no horror." — only what was applied."""
    parts: list[str] = []
    for stance, phrase in _SAID.items():
        names = [items[m.item_id].display_title for m in u.films
                 if m.stance == stance and m.item_id in applied and m.item_id in items]  # fmt: skip
        if names:
            parts.append(phrase.format(join(names)))
    wanted = [g.lower() for g in u.wanted_genres] + list(u.wanted_topics) + list(u.people)
    if wanted:
        parts.append(f"you're after {join(wanted, 'or')}")
    avoided = [g.lower() for g in u.avoided_genres] + list(u.avoided_topics) + list(u.avoided_people)
    if avoided:
        parts.append(f"no {join(avoided, 'or')}")
    if u.year_min and u.year_max:
        parts.append(f"films from {u.year_min}–{u.year_max}")
    elif u.year_min:
        parts.append(f"films from {u.year_min} on")
    elif u.year_max:
        parts.append(f"films up to {u.year_max}")
    if not parts:
        return ""
    said = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", and " + parts[-1]
    return f"Got it: {sanitize_output(said, 400)}."


# Films outside the rated catalogue -------------------------------------------------------------------------
NOT_RATED = "not among the films I can recommend (no ratings for {} here)"


def outside_said(titles: Sequence[str], stance: str, alone: bool) -> str:
    """What the chat says after taking films outside the rated catalogue: "It's not among the films I can
    recommend (no ratings for it here), but I'll use it to find what you may like." (``alone``: the summary
    named only them, so "it" is clear)."""
    if not titles:
        return ""
    one = len(titles) == 1
    it = "it" if one else "them"
    subject = ("It's" if one else "They're") if alone else f"{join(list(titles))} {'is' if one else 'are'}"
    use = f"use {it} to find what you may like" if stance == "liked" else f"steer away from films like {it}"
    return sanitize_output(f"{subject} {NOT_RATED.format(it)}, but I'll {use}.", 500)


def outside_not_recommended(item: Item, kept: bool = False) -> str:
    """"Why (not) X?" about a film the user named that the rated catalogue lacks (``kept``: liked or disliked)."""
    then = "What you told me about it shapes your picks." if kept else \
        "Tell me whether you liked it and I'll use it to find films like it."  # fmt: skip
    return sanitize_output(f"I can't recommend {item.display_title}: it's {NOT_RATED.format('it')}. {then}", 400)


def outside_about(item: Item) -> str:
    """A film outside the rated catalogue the user asked about: what the list knows, and that it is not rated."""
    genres = ", ".join(item.genres[:3]).lower() or "a film"
    themes = ", ".join(item.keywords[:3])
    extra = f" about {themes}" if themes else ""
    return sanitize_output(f"{item.display_title} is {genres}{extra}. It's {NOT_RATED.format('it')}; tell me "
                           "whether you liked it and I'll use it to find films like it.", 500)  # fmt: skip


# Why ----------------------------------------------------------------------------------------------------
def reasons_in_words(item: Item, evidence: Evidence) -> list[str]:
    """The recorded evidence as plain sentences (no scores, no model names)."""
    lines = []
    if evidence.similar_liked:
        lines.append(f"It is close to {join(list(evidence.similar_liked[:3]))}, which you liked.")
    if evidence.shared_genres:
        lines.append(f"It is {join([g.lower() for g in evidence.shared_genres[:3]])}, like films you enjoyed.")
    shared = [*evidence.shared_keywords[:3], *evidence.shared_tags[:2]]
    if shared:
        lines.append(f"It has {join(shared)} in common with your favourites.")
    if evidence.matched_preferences:
        lines.append(f"It fits what you asked for: {join(list(evidence.matched_preferences[:2]))}.")
    if evidence.collaborative:
        lines.append("People whose tastes overlap yours chose it too.")
    if not lines and item.genres:
        lines.append(f"It is {join([g.lower() for g in item.genres[:3]])}.")
    return [sanitize_output(line, 300) for line in lines]


def why_text(entry: Shown, item: Item) -> str:
    text = f"I recommended {entry.title} because: {sanitize_output(entry.explanation)}"
    reasons = reasons_in_words(item, entry.evidence_value())
    if reasons:
        text += "\nWhat I recorded when I picked it:\n" + "\n".join(f"- {r}" for r in reasons)
    return text


def not_shown_text(title: str) -> str:
    return (f"I haven't recommended {title} to you, so there's no recorded reason. Ask \"why not {title}?\" to hear "
            "what in your profile led away from it.")  # fmt: skip


def about_text(item: Item) -> str:
    """A film the user asked about without a request: what the catalogue knows, and what they can do."""
    genres = ", ".join(item.genres[:3]).lower() or "a film"
    themes = ", ".join([*item.keywords[:3]])
    extra = f" about {themes}" if themes else ""
    return sanitize_output(f"{item.display_title} is {genres}{extra}. Say \"more like it\" for similar films, or "
                           "tell me whether you liked it.", 500)  # fmt: skip

