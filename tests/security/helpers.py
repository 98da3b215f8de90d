"""Reading the app's outputs the way an outside client does, for the security suite (no app internals, so the
suite also runs against older versions of the app, where the cases it covers failed)."""

from __future__ import annotations

import html
from typing import Any

COOKIE = "llmrec-session"
BUSY = ("busy", "still working on your previous", "faster than I can answer", "still getting ready")


def text(message: dict) -> str:
    """A chat message as the page shows it."""
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return html.unescape(str(content or ""))


def history(result: Any) -> list[dict]:
    """The chat in an endpoint's outputs, whatever their order (the first list of role/content messages)."""
    for value in result:
        if isinstance(value, list) and value and isinstance(value[0], dict) and "role" in value[0]:
            return value
    return []


def said(result: Any) -> list[str]:
    return [text(m) for m in history(result)]


def cards(result: Any) -> list[dict]:
    """The recommendation cards in an endpoint's outputs (the first list of dicts with an item id)."""
    for value in result:
        if isinstance(value, list) and value and isinstance(value[0], dict) and "item_id" in value[0]:
            return value
    return []


def is_busy(reply: str) -> bool:
    return any(mark in reply for mark in BUSY)
