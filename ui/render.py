"""The one place where text becomes HTML in the app: every string from users, the catalogue or a model is escaped
here before any component shows it.

Gradio's ``Chatbot`` puts a message into the page as HTML even with ``render_markdown=False`` (only sanitised), so
a message, a title or a model sentence holding ``<img src=...>`` would be drawn and fetch its URL. The chat is
therefore handed escaped text (``chat_message``); the cards, notes and the status pill are built from escaped
fields too. Nothing else in ``ui/`` builds HTML from data.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

LISTED = re.compile(r"^(\d{1,2}\. .+?) — .*$", re.MULTILINE)
MAX_SHOWN = 4000  # characters of one chat message drawn in the page (the engine reads at most 2000)


def escape(text: Any) -> str:
    """``text`` as inert HTML text: ``<``, ``>``, ``&`` and both quotes become entities."""
    return html.escape(str(text if text is not None else ""), quote=True)


def chat_message(role: str, text: str) -> dict[str, str]:
    """A chat message for ``gr.Chatbot``: escaped text, so the page shows exactly what was said and renders nothing.

    In an assistant message a numbered list of picks shows titles only (their reasons are on the cards)."""
    role = "assistant" if role == "assistant" else "user"
    text = str(text or "")
    if role == "assistant":
        text = LISTED.sub(r"\1", text)
    if len(text) > MAX_SHOWN:
        text = text[:MAX_SHOWN] + "…"
    return {"role": role, "content": escape(text)}


def plain(content: Any) -> str:
    """The text of a chat message as the page shows it (the inverse of ``chat_message``; for tests and tools)."""
    if isinstance(content, list):
        content = "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return html.unescape(str(content or ""))


def card_html(card: dict[str, Any]) -> str:
    """One card's text as HTML; every field is escaped (titles and explanations are untrusted text)."""
    title, year = str(card.get("title", "")), card.get("year")
    if year and title.endswith(f" ({year})"):
        title = title[: -len(f" ({year})")]
    tags = "".join(f'<span class="genre">{escape(g)}</span>' for g in list(card.get("genres") or [])[:4])
    source = card.get("explanation_source")
    said = {"llm": "written by the language model", "writing": "the language model is writing a reason…"}
    try:
        position = int(card.get("position") or 0)
    except (TypeError, ValueError):
        position = 0
    return (f'<div class="rec-head"><span class="rec-rank">#{position}</span>'
            f'<span class="rec-year">{escape(year or "")}</span></div>'
            f'<div class="rec-title">{escape(title)}</div><div class="rec-genres">{tags}</div>'
            f'<p class="rec-why">{escape(card.get("explanation", ""))}</p>'
            f'<div class="rec-source">reason {escape(said.get(str(source), "from the evidence"))}</div>')  # fmt: skip


def status_html(stage: str, state: str) -> str:
    state = state if state in ("loading", "waiting", "ready", "error") else "error"
    return f'<div class="status-pill {state}"><span class="dot"></span>{escape(stage)}</div>'


def notes_html(notes: Sequence[str]) -> str:
    return "".join(f'<div class="note">ℹ️ {escape(n)}</div>' for n in notes)


def identity_html(label: str) -> str:
    return f'<div class="who">{escape(label)}</div>'
