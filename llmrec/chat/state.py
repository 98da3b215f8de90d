"""What a conversation remembers about a user, as plain JSON-ready dataclasses.

The state is the profile as the chat knows it (liked, disliked, seen; stated preferences, themes and
people; genre, year and theme constraints), the recommendations shown with the evidence recorded when
they were shown, and where onboarding stands. ``to_profile`` turns it into the ``UserProfile`` the
pipeline uses, its limits as the profile's ``Constraints`` (which the pipeline applies).

Films liked or disliked that the rated catalogue lacks (``llmrec.chat.outside``) are kept apart, in
``outside_liked`` / ``outside_disliked``: they cannot be history (no vector, no ratings), so ``to_profile``
turns each into a stated preference from its title, genres and keywords; the liked ones' ids also go on as the
profile's ``outside_liked`` (the dialogue scorer's context).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from llmrec.types import Constraints, Evidence, HistoryEntry, Item, UserProfile

LIKED_RATING = 5.0
DISLIKED_RATING = 1.0


@dataclass
class Shown:
    """A recommendation as it was shown, with its recorded evidence (what "why?" answers from)."""

    item_id: str
    title: str
    explanation: str
    explanation_source: str
    evidence: dict[str, Any]
    score: float
    sources: list[str]
    round: int

    def evidence_value(self) -> Evidence:
        data = dict(self.evidence)
        for key in ("shared_genres", "shared_keywords", "shared_tags", "similar_liked", "matched_preferences"):
            data[key] = tuple(data.get(key, ()))
        data["stage_scores"] = tuple(tuple(s) for s in data.get("stage_scores", ()))
        return Evidence(**data)


@dataclass
class ChatState:
    user_id: str
    liked: list[str] = field(default_factory=list)
    disliked: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    preferences: list[str] = field(default_factory=list)
    people: list[str] = field(default_factory=list)  # people the user likes (names the catalogue's tags know)
    topics: list[str] = field(default_factory=list)  # themes the user wants (tags and keywords the catalogue knows)
    wanted_genres: list[str] = field(default_factory=list)
    avoided_genres: list[str] = field(default_factory=list)
    avoided_keywords: list[str] = field(default_factory=list)
    year_min: int | None = None
    year_max: int | None = None
    shown: list[Shown] = field(default_factory=list)
    round: int = 0
    questions_asked: int = 0
    asked_items: list[str] = field(default_factory=list)
    onboarding: str = "start"  # start | genres | items | done
    pending: dict[str, Any] = field(default_factory=dict)  # an ambiguous title awaiting the user's choice
    last_item: str | None = None  # the item the conversation is about (for "seen it", "why?")
    outside_liked: list[str] = field(default_factory=list)  # films outside the rated catalogue (MovieLens ids)
    outside_disliked: list[str] = field(default_factory=list)

    def keeps_outside(self, item_id: str) -> bool:
        """Whether ``item_id`` is a film outside the rated catalogue this user said they liked or disliked."""
        return item_id in self.outside_liked or item_id in self.outside_disliked

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChatState:
        data = dict(data)
        data["shown"] = [Shown(**s) for s in data.get("shown", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def current(self) -> list[Shown]:
        """The latest list shown."""
        return [s for s in self.shown if s.round == self.round]

    def shown_item(self, item_id: str) -> Shown | None:
        return next((s for s in reversed(self.shown) if s.item_id == item_id), None)

    def to_profile(self, base: UserProfile | None = None, outside: Mapping[str, Item] | None = None) -> UserProfile:
        """The pipeline's profile: a data-set history (returning users) plus what was said in the chat.
        ``outside``: the films outside the rated catalogue, whose liked and disliked ones become preferences."""
        from llmrec.chat.outside import preference_text

        base = base or UserProfile(user_id=self.user_id)
        have = {e.item_id for e in base.history}
        history = list(base.history)
        history += [HistoryEntry(i, LIKED_RATING) for i in self.liked if i not in have]
        preferences = list(base.stated_preferences) + self.preferences
        if outside:
            preferences += [preference_text(outside[i]) for i in self.outside_liked if i in outside]
            preferences += [preference_text(outside[i], liked=False) for i in self.outside_disliked if i in outside]
        if self.wanted_genres:
            preferences.append(" or ".join(self.wanted_genres) + " movies")
        if self.topics or self.people:
            preferences.append("movies about " + ", ".join([*self.topics, *self.people]))
        constraints = Constraints(wanted_genres=tuple(self.wanted_genres), avoided_genres=tuple(self.avoided_genres),
                                  year_min=self.year_min, year_max=self.year_max,
                                  avoided_keywords=tuple(self.avoided_keywords))  # fmt: skip
        return UserProfile(
            user_id=self.user_id,
            history=tuple(history),
            stated_preferences=tuple(preferences),
            disliked=tuple(dict.fromkeys([*base.disliked, *self.disliked])),
            excluded=tuple(dict.fromkeys([*base.excluded, *self.seen])),
            notes=base.notes,
            constraints=constraints,
            outside_liked=tuple(dict.fromkeys([*base.outside_liked, *self.outside_liked])),
        )
