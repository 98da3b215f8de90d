"""Text crossing a trust boundary: user and item text going into prompts, model text going out.

Into prompts: control characters removed, whitespace collapsed, angle brackets replaced so data can
never close the tags that fence it, length capped. Out of the model: HTML, images, links and bare
URLs stripped before anyone renders the text.
"""

from __future__ import annotations

import html
import re

from llmrec.data.item_text import clean_text

_TAG = re.compile(r"<[^>]{0,200}>")
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"(?:https?|ftp|file|data|javascript):\S*|www\.\S+", re.IGNORECASE)


def fence(text: str | None, limit: int = 200) -> str:
    """``text`` made safe to place inside a fenced data block of a prompt."""
    text = clean_text(text or "", limit)
    return text.replace("<", "‹").replace(">", "›")


def sanitize_output(text: str, limit: int = 600) -> str:
    """Model output as plain text: no HTML, no images, no links or URLs, no control characters."""
    text = html.unescape(text or "")
    text = _MD_IMAGE.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _TAG.sub("", text)
    text = _URL.sub("", text)
    text = text.replace("<", "").replace(">", "")
    return clean_text(text, limit)
