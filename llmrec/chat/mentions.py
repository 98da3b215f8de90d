"""Catalogue titles mentioned anywhere in a sentence, and how the sentence feels about them.

The intent rules find titles after verbs ("I loved Alien"); people also write "Easy A (2010) is so
funny" or "just watched The Waterboy, great stuff". This scans every run of words against the
catalogue's normalised titles (longest first) instead. A title followed by its year is taken at
once; one without a year only when it is at least two words that are not all everyday words, so
"a good love story" does not turn into a film by accident. Written here rather than with a
named-entity model: the catalogue is the gazetteer, and exact look-ups are fast and predictable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from llmrec.profile import _aliases, normalise_title
from llmrec.types import Item

MAX_WORDS = 10
_ARTICLES = frozenset(("the", "a", "an"))
_EVERYDAY = frozenset(
    """i me my you your we our it its is was were be been are am a an the of to in on at by for with and or but
    not no yes so very really just too also that this these those what which who one ones some any all more
    movie movies film films like liked love loved good great best seen watch watched see saw do did have has
    had about if then than there here out up down new old story time day night man men life world last first next
    other another yesterday today tonight week weekend year years ago""".split()
)
_VAGUE = frozenset("kind kinds sort sorts type types stuff things thing ones genre genres".split())
_NOT_SEEN = re.compile(
    r"\b(?:(?:have|has|had)\s*(?:n't|not)|did\s*(?:n't|not)|never|not)\s+(?:yet\s+)?(?:seen|see|watch(?:ed)?)\b"
    r"|\bhaven'?t\b|\bnot seen\b",
    re.IGNORECASE,
)
_NEGATIVE = re.compile(
    r"\b(?:didn'?t|did not|don'?t|do not)\s+(?:like|enjoy|love)\b|\b(?:hated?|dislike[ds]?|boring|awful|terrible|"
    r"worst|not for me|not a fan)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Mention:
    item_id: str
    span: str  # the normalised words that matched
    year_given: bool


@lru_cache(maxsize=4)
def _index(table: tuple[tuple[str, str, int | None], ...]) -> dict[str, tuple[int, ...]]:
    names, owners = _aliases(table)
    index: dict[str, list[int]] = {}
    for name, pos in zip(names, owners):
        index.setdefault(name, []).append(pos)
    return {name: tuple(positions) for name, positions in index.items()}


def _year(token: str) -> int | None:
    return int(token) if re.fullmatch(r"(18[89]\d|19\d\d|20[0-4]\d)", token) else None


def spot_titles(text: str, items: Mapping[str, Item], popularity: Mapping[str, int] | None = None) -> list[Mention]:
    """Catalogue items named in ``text``, in order, without overlaps."""
    table = tuple((iid, it.title, it.year) for iid, it in items.items())
    index = _index(table)
    popular = popularity or {}
    words = re.sub(r"[^0-9a-z]+", " ", normalise_title(f"x {text}")).split()[1:]  # "x": keep a leading article
    found: list[Mention] = []
    i = 0
    while i < len(words):
        start = i + 1 if words[i] in _ARTICLES else i
        hit = None
        for n in range(min(MAX_WORDS, len(words) - start), 0, -1):
            key = " ".join(words[start : start + n])
            positions = index.get(key)
            if not positions:
                continue
            year = _year(words[start + n]) if start + n < len(words) else None
            pick, year = _choose(positions, table, year, popular)
            if year is not None or _plausible_without_year(words[start : start + n]):
                hit = (Mention(table[pick][0], key, year is not None), start + n + (year is not None))
                break
        if hit is None:
            i += 1
            continue
        if all(m.item_id != hit[0].item_id for m in found):
            found.append(hit[0])
        i = hit[1]
    return found


def _choose(
    positions: tuple[int, ...], table: tuple, year: int | None, popular: Mapping[str, int]
) -> tuple[int, int | None]:
    """The item a title means (the year's, within one; else the most popular) and the year if it matched."""
    if year is not None:
        near = [p for p in positions if table[p][2] is not None and abs(table[p][2] - year) <= 1]
        if near:
            return min(near, key=lambda p: (abs(table[p][2] - year), -popular.get(table[p][0], 0))), year
    return max(positions, key=lambda p: popular.get(table[p][0], 0)), None


def _plausible_without_year(words: list[str]) -> bool:
    return len(words) >= 2 and len(" ".join(words)) >= 6 and any(w not in _EVERYDAY for w in words)


def content_words(text: str) -> list[str]:
    """The words of ``text`` that are not everyday ones ("that kind of movies" has none)."""
    return [w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in _EVERYDAY and w not in _VAGUE]


def mention_feeling(text: str) -> str:
    """``dislike``, ``unseen`` or ``like`` — what a sentence that names a film says about it."""
    if _NEGATIVE.search(text):
        return "dislike"
    if _NOT_SEEN.search(text):
        return "unseen"
    return "like"
