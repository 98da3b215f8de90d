"""Typed values passed between stages. Frozen dataclasses, never raw dicts.

Ids are the data set's own ids as strings (MovieLens ``movieId``/``userId``, Amazon ASINs, ...);
dense integer indices exist only inside models and never leave them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TRAILING_ARTICLE = re.compile(r"^(?P<rest>.+), (?P<article>The|A|An|Les|La|Le|L'|Il|El|Die|Der|Das)$")


@dataclass(frozen=True)
class Item:
    """One catalogue entry."""

    item_id: str
    title: str
    year: int | None = None
    genres: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""

    @property
    def display_title(self) -> str:
        """``Title (Year)`` as people write it: MovieLens' "Matrix, The" becomes "The Matrix"."""
        match = _TRAILING_ARTICLE.match(self.title)
        title = f"{match['article']} {match['rest']}" if match else self.title
        return f"{title} ({self.year})" if self.year else title


@dataclass(frozen=True)
class Interaction:
    """A user's rating, purchase, view or review of an item."""

    user_id: str
    item_id: str
    rating: float | None
    timestamp: int


@dataclass(frozen=True)
class HistoryEntry:
    """One item in a user's history, as the profile sees it."""

    item_id: str
    rating: float | None = None
    timestamp: int | None = None


@dataclass(frozen=True)
class Constraints:
    """Hard limits a person stated: genres wanted (any of) or avoided, a year range, themes to avoid."""

    wanted_genres: tuple[str, ...] = ()
    avoided_genres: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None
    avoided_keywords: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.wanted_genres or self.avoided_genres or self.year_min or self.year_max
                    or self.avoided_keywords)  # fmt: skip

    def allows(self, item: Item) -> bool:
        """Whether ``item`` meets every limit (an item without a year fails a year limit)."""
        genres = set(item.genres)
        if genres & set(self.avoided_genres):
            return False
        if self.avoided_keywords:
            text = " ".join((*item.keywords, *item.tags)).lower()
            if any(k.lower() in text for k in self.avoided_keywords):
                return False
        if self.year_min and (item.year or 0) < self.year_min:
            return False
        if self.year_max and (item.year or 9999) > self.year_max:
            return False
        return not self.wanted_genres or bool(genres & set(self.wanted_genres))


@dataclass(frozen=True)
class UserProfile:
    """What the system knows about a user: history, stated preferences, dislikes, exclusions."""

    user_id: str | None = None
    history: tuple[HistoryEntry, ...] = ()
    stated_preferences: tuple[str, ...] = ()
    disliked: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    constraints: Constraints = field(default_factory=Constraints)
    # Liked films outside the rated catalogue (ids of ``ml-25m-keywords/movies_all.csv``, in the order named): never
    # history or candidates; the dialogue scorer reads them as context after the history (``llmrec.chat.outside``).
    outside_liked: tuple[str, ...] = ()

    @property
    def seen(self) -> frozenset[str]:
        """Items never to recommend again: the history, dislikes and exclusions."""
        return frozenset(e.item_id for e in self.history) | frozenset(self.disliked) | frozenset(self.excluded)

    @property
    def is_newcomer(self) -> bool:
        return not self.history


@dataclass(frozen=True)
class Evidence:
    """Recorded facts behind a recommendation; explanations may only use these."""

    shared_genres: tuple[str, ...] = ()
    shared_keywords: tuple[str, ...] = ()
    shared_tags: tuple[str, ...] = ()
    similar_liked: tuple[str, ...] = ()
    matched_preferences: tuple[str, ...] = ()
    collaborative: str | None = None
    stage_scores: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Candidate:
    """An item proposed by a retriever or reordered by a ranker."""

    item_id: str
    score: float
    sources: tuple[str, ...] = ()
    evidence: Evidence = field(default_factory=Evidence)


@dataclass(frozen=True)
class Recommendation:
    """What a person sees: the item, its rank score, an explanation and the evidence behind it."""

    item: Item
    score: float
    sources: tuple[str, ...]
    explanation: str
    evidence: Evidence
    explanation_source: str = "template"
