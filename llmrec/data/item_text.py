"""Item text for embedding and for prompts, rendered from the versioned ``item_text`` template."""

from __future__ import annotations

import dataclasses
import unicodedata

from llmrec.prompts import PromptTemplate, load_prompt
from llmrec.types import Item

MAX_DESCRIPTION_CHARS = 1000
MAX_TITLE_CHARS = 300
MAX_LIST = 12


def clean_text(text: str, limit: int) -> str:
    """Drop control characters and invalid surrogates, collapse whitespace, cap the length."""
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    text = " ".join(text.split())
    return text[:limit].rstrip()


def clean_field(text: str) -> str:
    """A text field as shown and stored: lone surrogates become U+FFFD and control characters (but newlines and
    tabs) become spaces; nothing else changes."""
    if text.isprintable():
        return text
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    return "".join(ch if ch in "\n\t" or unicodedata.category(ch)[0] != "C" else " " for ch in text)


def _clean_all(values: tuple[str, ...], limit: int) -> tuple[str, ...]:
    if all(v.isprintable() and v == v.strip() for v in values):
        return values
    return tuple(v for v in (clean_text(str(x), limit) for x in values) if v)


def clean_item(item: Item) -> Item:
    """``item`` with text that is safe to show, store and encode: the title cleaned like ``clean_text`` (no lone
    surrogates or control characters, whitespace collapsed), the lists without blank entries, the description
    without surrogates or control characters. An item that is clean already is returned as it is."""
    title = item.title if item.title.isprintable() and item.title == item.title.strip() and "  " not in item.title \
        else clean_text(item.title, MAX_TITLE_CHARS)
    changed = {
        "title": title,
        "genres": _clean_all(item.genres, 100),
        "keywords": _clean_all(item.keywords, 200),
        "tags": _clean_all(item.tags, 200),
        "description": clean_field(item.description),
    }
    if all(getattr(item, name) is value or getattr(item, name) == value for name, value in changed.items()):
        return item
    return dataclasses.replace(item, **changed)


def item_text(item: Item, template: PromptTemplate | None = None) -> str:
    """The item as one short document: title (year), genres, keywords, tags, description."""
    template = template or load_prompt("item_text")
    return template.render(
        drop_empty_lines=True,
        title=clean_text(item.title, MAX_TITLE_CHARS),
        year=item.year or "",
        genres=", ".join(item.genres[:MAX_LIST]),
        keywords=", ".join(item.keywords[:MAX_LIST]),
        tags=", ".join(item.tags[:MAX_LIST]),
        description=clean_text(item.description, MAX_DESCRIPTION_CHARS),
    ).replace(" ()", "")
