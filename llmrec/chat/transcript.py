"""One chat turn as a JSON-ready record (``llmrec chat --json``), so conversations can be scripted and checked.

The record holds what the user said, the reply text and quick replies, the cards shown (data-set item ids and
titles), what the message was understood as (films with stances and item ids, genres, themes, people, years,
requests, and who read it: ``exact``, ``llm``, ``rules`` or ``rules-fallback``) and the profile after the turn:
liked / disliked / seen items with titles, the films outside the rated catalogue liked or disliked
(``outside_liked`` / ``outside_disliked``: named by the user, used as text, never recommended), wanted and avoided
genres, the year range, wanted themes and people, themes to avoid and the stated preferences.
"""

from __future__ import annotations

from collections import ChainMap
from typing import Any


def _titled(ids: list[str], items: Any) -> list[dict[str, str]]:
    return [{"item_id": i, "title": items[i].display_title if i in items else i} for i in ids]


def profile_record(state: Any, items: Any, outside: Any = None) -> dict[str, Any]:
    """The chat's view of the user (a ``ChatState``) with titles beside the ids (``outside``: the films outside
    the rated catalogue, for their titles)."""
    outside = outside if outside is not None else {}
    return {
        "liked": _titled(state.liked, items),
        "outside_liked": _titled(list(getattr(state, "outside_liked", [])), outside),
        "disliked": _titled(state.disliked, items),
        "outside_disliked": _titled(list(getattr(state, "outside_disliked", [])), outside),
        "seen": _titled(state.seen, items),
        "wanted_genres": list(state.wanted_genres),
        "avoided_genres": list(state.avoided_genres),
        "avoided_keywords": list(state.avoided_keywords),
        "topics": list(getattr(state, "topics", [])),
        "people": list(getattr(state, "people", [])),
        "year_min": state.year_min,
        "year_max": state.year_max,
        "preferences": list(state.preferences),
    }


def understood_record(understood: Any, items: Any) -> dict[str, Any] | None:
    """What a message was read as, with titles beside the linked item ids (None for buttons and greetings)."""
    if understood is None:
        return None
    data = understood.to_json()
    data.pop("text", None)
    for film in data["films"]:
        item_id = film.get("item_id")
        film["title"] = items[item_id].display_title if item_id is not None and item_id in items else None
    return data


def turn_record(message: str | None, reply: Any, conversation: Any) -> dict[str, Any]:
    """``message`` (None for the greeting), the ``Reply`` and the profile after the turn."""
    outside = getattr(conversation, "outside", {})
    films = ChainMap(conversation.items, outside)
    cards = [{"position": c.position, "item_id": c.item_id, "title": c.title, "explanation": c.explanation,
              "explanation_source": c.explanation_source} for c in reply.cards]  # fmt: skip
    return {
        "user": message,
        "reply": reply.text,
        "cards": cards,
        "chips": list(reply.chips),
        "notes": list(reply.notes),
        "ended": reply.ended,
        "understood": understood_record(getattr(reply, "understood", None), films),
        "profile": profile_record(conversation.state(), conversation.items, outside),
    }
