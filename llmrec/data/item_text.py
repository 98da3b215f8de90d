"""Item text for embedding and for prompts, rendered from the versioned ``item_text`` template."""

from __future__ import annotations

import unicodedata

from llmrec.prompts import PromptTemplate, load_prompt
from llmrec.types import Item

MAX_DESCRIPTION_CHARS = 1000
MAX_LIST = 12


def clean_text(text: str, limit: int) -> str:
    """Drop control characters and invalid surrogates, collapse whitespace, cap the length."""
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    text = " ".join(text.split())
    return text[:limit].rstrip()


def item_text(item: Item, template: PromptTemplate | None = None) -> str:
    """The item as one short document: title (year), genres, keywords, tags, description."""
    template = template or load_prompt("item_text")
    return template.render(
        drop_empty_lines=True,
        title=clean_text(item.title, 300),
        year=item.year or "",
        genres=", ".join(item.genres[:MAX_LIST]),
        keywords=", ".join(item.keywords[:MAX_LIST]),
        tags=", ".join(item.tags[:MAX_LIST]),
        description=clean_text(item.description, MAX_DESCRIPTION_CHARS),
    ).replace(" ()", "")
