"""One chat turn as a JSON-ready record (``llmrec chat --json``), so conversations can be scripted and checked.

The record holds what the user said, the reply text and quick replies, the cards shown (data-set item ids and
titles), what the message was understood as (films with stances and item ids, genres, themes, people, years,
requests, and who read it: ``exact``, ``llm``, ``rules`` or ``rules-fallback``) and the profile after the turn:
liked / disliked / seen items with titles, wanted and avoided genres, the year range, wanted themes and people,
themes to avoid and the stated preferences.
"""

from __future__ import annotations

from typing import Any


def _titled(ids: list[str], items: Any) -> list[dict[str, str]]:
    return [{"item_id": i, "title": items[i].display_title if i in items else i} for i in ids]


def profile_record(state: Any, items: Any) -> dict[str, Any]:
    """The chat's view of the user (a ``ChatState``) with titles beside the ids."""
    return {
        "liked": _titled(state.liked, items),
        "disliked": _titled(state.disliked, items),
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
        film["title"] = items[film["item_id"]].display_title if film.get("item_id") in items else None
    return data


def turn_record(message: str | None, reply: Any, conversation: Any) -> dict[str, Any]:
    """``message`` (None for the greeting), the ``Reply`` and the profile after the turn."""
    cards = [{"position": c.position, "item_id": c.item_id, "title": c.title, "explanation": c.explanation,
              "explanation_source": c.explanation_source} for c in reply.cards]  # fmt: skip
    return {
        "user": message,
        "reply": reply.text,
        "cards": cards,
        "chips": list(reply.chips),
        "notes": list(reply.notes),
        "ended": reply.ended,
        "understood": understood_record(getattr(reply, "understood", None), conversation.items),
        "profile": profile_record(conversation.state(), conversation.items),
    }
