"""From a ``Reading`` (phrases by stance) to an ``Understanding`` (catalogue facts), for any reader.

Each phrase is, in this order: a card on screen ("the second one", "#3"), the film in focus ("it",
"that one"), a decade or year, a genre or mood ("horror movies", "something funny"), a title from the
context, a catalogue title, a theme or person the catalogue's tags and keywords know, or unknown. Titles
go through the app's matcher (``llmrec.profile.resolve_title``: normalised title, alternate titles, the
year, fuzzy spelling) plus a main-title index ("Kill Bill" -> the "Kill Bill: Vol." films), and several
films sharing a title become a question, never a guess. Item ids come only from the catalogue. A title the
rated catalogue lacks is then looked up, exactly, among the films outside it (``context.outside``,
``llmrec.chat.outside``): before themes when it carries a year, after them otherwise; such a mention has
``outside`` set.

A model's phrase must be in the message (or be a title from the context); anything else is dropped and
noted, so a reply that invents a film changes nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from llmrec.chat.intents import card_position, filler_only, genre_of, is_pronoun, years_in
from llmrec.chat.understanding import POSITIVE, TARGETED, Mention, Reading, ReadingContext, Request, Understanding
from llmrec.errors import DataError
from llmrec.profile import normalise_title, resolve_title, split_title_year
from llmrec.types import Item

_LEADING = re.compile(r"^(?:(?:something|anything|movies?|films?|stuff|more|some)\s+(?:like|about|with)\s+|"
                      r"(?:movies?|films?|anything|something|stuff)\s+|(?:the\s+)?(?:movie|film)\s+)",
                      re.IGNORECASE)  # fmt: skip
_TRAILING = re.compile(r"\s+(?:movies?|films?|flicks?|stuff|ones?|type|kind)$", re.I)
_DIGITS = re.compile(r"\d+")
_NAME = re.compile(r"^[A-Z][\w'.-]+(?:\s+[A-Z][\w'.-]+){1,2}$")
MIN_TOPIC_COUNT = 1  # every tag and keyword of the catalogue is a theme a person may name


@dataclass
class Catalogue:
    """What linking needs to know about the items: popularity, a main-title index and the theme vocabulary.
    Built once per catalogue (``catalogue_for``) and shared by every conversation."""

    items: Mapping[str, Item]
    popularity: Mapping[str, int]

    @cached_property
    def main_titles(self) -> dict[str, list[str]]:
        """Normalised main title (before ':' or ' - ') -> item ids, most popular first ("kill bill")."""
        out: dict[str, list[str]] = {}
        for item_id, item in self.items.items():
            title = split_title_year(item.display_title)[0]
            main = re.split(r"\s*(?::|\s-\s)\s*", title.split(" (")[0])[0]
            key = normalise_title(main)
            if key and key != normalise_title(title.split(" (")[0]):
                out.setdefault(key, []).append(item_id)
        for ids in out.values():
            ids.sort(key=lambda i: (-self.popularity.get(i, 0), i))
        return out

    @cached_property
    def topics(self) -> dict[str, str]:
        """Lower-cased tags and keywords on at least ``MIN_TOPIC_COUNT`` items -> themselves."""
        counts = Counter(t.lower() for item in self.items.values() for t in {*item.tags, *item.keywords})
        return {t: t for t, n in counts.items() if n >= MIN_TOPIC_COUNT and len(t) >= 3}


_CACHE: dict[int, tuple[Mapping[str, Item], Catalogue]] = {}


def catalogue_for(items: Mapping[str, Item], popularity: Mapping[str, int]) -> Catalogue:
    """The shared ``Catalogue`` of ``items`` (kept while that mapping lives)."""
    held = _CACHE.get(id(items))
    if held is None or held[0] is not items:
        held = (items, Catalogue(items, popularity))
        _CACHE[id(items)] = held
        while len(_CACHE) > 4:
            _CACHE.pop(next(iter(_CACHE)))
    return held[1]


# Films --------------------------------------------------------------------------------------------------
def find_film(phrase: str, catalogue: Catalogue) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """``(item id, options, closest)``: one film; several sharing the title (ask); or none (closest titles)."""
    items, popular = catalogue.items, catalogue.popularity
    title, year = split_title_year(phrase)
    key = normalise_title(title)
    if not key:
        return None, (), ()
    try:
        match = resolve_title(phrase, items, popular)
    except DataError as exc:
        match, closest = None, tuple(re.findall(r"'([^']+)'", str(exc).partition("closest:")[2]))
    else:
        closest = ()
    if match is not None and not match.note:
        return match.item_id, (), ()
    if match is not None and "also matches" in match.note:
        same = [i for i, it in items.items() if normalise_title(split_title_year(it.display_title)[0]) == key
                or normalise_title(it.title) == key]  # fmt: skip
        same.sort(key=lambda i: (-popular.get(i, 0), i))
        options = tuple(dict.fromkeys([match.item_id, *same]))[:5]
        return (None, options, ()) if len(options) > 1 else (match.item_id, (), ())
    prefixed = catalogue.main_titles.get(key, [])
    if year is not None:
        prefixed = [i for i in prefixed if items[i].year and abs(items[i].year - year) <= 1]
    if len(prefixed) == 1:
        return prefixed[0], (), ()
    if prefixed:
        return None, tuple(prefixed[:5]), ()
    if match is not None and set(_DIGITS.findall(title)) <= set(_DIGITS.findall(items[match.item_id].display_title)):
        return match.item_id, (), ()  # a fuzzy spelling ("Interstelar"); a number that differs is another film
    if match is not None:
        closest = (items[match.item_id].display_title,)
    return None, (), closest


def _context_film(phrase: str, context: ReadingContext) -> str | None:
    """A title shown in the context (a card or the film in focus) that the phrase names (a year it gives too)."""
    words, year = split_title_year(phrase)
    key = normalise_title(words)
    shown = [(i, t) for _, i, t in context.cards]
    if context.focus:
        shown.append((context.focus, context.focus_title))
    for item_id, title in shown:
        full, shown_year = split_title_year(title)
        if year is not None and shown_year is not None and abs(year - shown_year) > 1:
            continue  # "Solaris (2002)" is not the "Solaris (1972)" on screen
        if key and key in (normalise_title(full), normalise_title(full.split(" (")[0])):
            return item_id
    return None


# Phrases ------------------------------------------------------------------------------------------------
def _clean(phrase: str) -> str:
    phrase = " ".join(phrase.replace("’", "'").split()).strip(" \"'“”.,!?;:")
    return phrase


def _topic(phrase: str, catalogue: Catalogue) -> str | None:
    words = _TRAILING.sub("", _LEADING.sub("", phrase)).strip().lower()
    words = re.sub(r"^(?:no|nothing|not|without|any|some|a|an|the)\s+", "", words)
    for candidate in (words, words.rstrip("s"), words + "s", re.sub(r"ies$", "y", words)):
        if candidate in catalogue.topics:
            return catalogue.topics[candidate]
    return None


def in_message(phrase: str, text: str, context: ReadingContext) -> bool:
    """Whether a model's phrase is in the message (spelling aside) or is a title from the context."""
    from rapidfuzz import fuzz

    norm = " ".join(re.sub(r"[^0-9a-z#]+", " ", phrase.lower()).split())
    body = " ".join(re.sub(r"[^0-9a-z#]+", " ", text.lower()).split())
    if not norm or norm in body:
        return True
    if _context_film(phrase, context) is not None or (context.last_reply and phrase.lower() in
                                                      context.last_reply.lower()):  # fmt: skip
        return True
    return fuzz.partial_ratio(norm, body) >= 85


@dataclass
class _Parts:
    films: list[Mention]
    wanted: list[str]
    avoided: list[str]
    topics: list[str]
    avoided_topics: list[str]
    people: list[str]
    avoided_people: list[str]
    unknown: list[tuple[str, str]]
    year_min: int | None = None
    year_max: int | None = None


def link(reading: Reading, text: str, context: ReadingContext, catalogue: Catalogue, source: str,
         notes: tuple[str, ...] = (), check_phrases: bool = False) -> Understanding:  # fmt: skip
    """The ``Understanding`` of ``text`` read as ``reading``; ``check_phrases`` drops phrases not in the message."""
    parts = _Parts([], [], [], [], [], [], [], [])
    dropped = []
    for stance, raw in reading.phrases():
        phrase = _clean(raw)
        if not phrase:
            continue
        if check_phrases and not in_message(phrase, text, context):
            dropped.append(phrase)
            continue
        _link_phrase(stance, phrase, context, catalogue, parts)
    lo, hi = years_in(" ".join(text.lower().split()))
    parts.year_min = parts.year_min if lo is None else lo
    parts.year_max = parts.year_max if hi is None else hi
    wanted = [g for g in dict.fromkeys(parts.wanted)]
    avoided = [g for g in dict.fromkeys(parts.avoided) if g not in wanted or _named(g, reading.disliked)]
    wanted = [g for g in wanted if g not in avoided]
    if dropped:
        notes = (*notes, f"ignored {len(dropped)} phrase(s) the model read that are not in your message")
    films = _inside_outside(_unique_films(parts.films), catalogue)
    return Understanding(
        text=text, films=tuple(films), wanted_genres=tuple(wanted), avoided_genres=tuple(avoided),
        wanted_topics=tuple(dict.fromkeys(parts.topics)), avoided_topics=tuple(dict.fromkeys(parts.avoided_topics)),
        people=tuple(dict.fromkeys(parts.people)), avoided_people=tuple(dict.fromkeys(parts.avoided_people)),
        year_min=parts.year_min, year_max=parts.year_max, requests=_requests(reading, films),
        unknown=tuple(parts.unknown), source=source, notes=notes,
    )  # fmt: skip


def _named(genre: str, phrases: list[str]) -> bool:
    """Whether a disliked phrase names the genre itself (not only a mood word that points at it)."""
    return any(genre.lower().replace("-", "") in p.lower().replace("-", "").replace(" ", "") for p in phrases)


def _link_phrase(stance: str, phrase: str, context: ReadingContext, catalogue: Catalogue, parts: _Parts) -> None:
    positive = stance in (*POSITIVE, "asked")
    position = card_position(phrase)
    if position is not None:
        card = context.card(position)
        parts.films.append(Mention(phrase, stance, card[1] if card else None, position))
        return
    if is_pronoun(phrase):
        if context.focus:
            parts.films.append(Mention(phrase, stance, context.focus))
        elif len(context.cards) == 1:
            parts.films.append(Mention(phrase, stance, context.cards[0][1], 1))
        else:
            parts.unknown.append((stance, phrase))
        return
    lo, hi = years_in(phrase.lower())
    if lo is not None or hi is not None:
        if positive:
            parts.year_min, parts.year_max = lo, hi
        return
    if (item_id := _context_film(phrase, context)) is not None:
        parts.films.append(Mention(phrase, stance, item_id))
        return
    genres, rest = genre_of(phrase)
    film = find_film(phrase, catalogue) if genres and rest else (None, (), ())
    dated = split_title_year(phrase)[1] is not None  # "Parasite (2019)": a title before a genre or theme
    if genres and film[0] is None and not film[1] and dated and _outside_film(stance, phrase, context, parts):
        return
    if genres and film[0] is None and not film[1]:  # "horror movies", "slow sci-fi"; not "The Dark Knight"
        if stance == "disliked":
            parts.avoided += genres
        elif positive:
            parts.wanted += genres
        if rest and (topic := _topic(rest, catalogue)):
            (parts.avoided_topics if stance == "disliked" else parts.topics).append(topic)
        return
    if filler_only(phrase):
        return
    item_id, options, closest = film if film[0] or film[1] else find_film(phrase, catalogue)
    if item_id is not None or options:
        parts.films.append(Mention(phrase, stance, item_id, options=options))
        return
    if dated and _outside_film(stance, phrase, context, parts):
        return
    if (topic := _topic(phrase, catalogue)) is not None:
        person = bool(_NAME.match(phrase))
        if stance == "disliked":
            (parts.avoided_people if person else parts.avoided_topics).append(phrase if person else topic)
        elif positive:
            (parts.people if person else parts.topics).append(phrase if person else topic)
        return
    if not dated and _outside_film(stance, phrase, context, parts):
        return
    if closest and stance != "mentioned":
        parts.films.append(Mention(phrase, stance, None, closest=closest))
    elif stance != "mentioned":
        parts.unknown.append((stance, phrase))


def _outside_film(stance: str, phrase: str, context: ReadingContext, parts: _Parts) -> bool:
    """A film outside the rated catalogue that ``phrase`` names exactly (``context.outside``), added to ``parts``."""
    if context.outside is None:
        return False
    item_id, options = context.outside.find(phrase)
    if item_id is None and not options:
        return False
    parts.films.append(Mention(phrase, stance, item_id, options=options, outside=True))
    return True


def _inside_outside(films: list[Mention], catalogue: Catalogue) -> list[Mention]:
    """Without rated films whose title is only part of an outside film's ("Spider-Man" in "Spider-Man: Into the
    Spider-Verse", which a title spotter also finds)."""
    outside = [f" {normalise_title(split_title_year(m.span)[0])} " for m in films if m.outside]
    if not outside:
        return films

    def part(m: Mention) -> bool:
        if m.outside or m.item_id is None or m.item_id not in catalogue.items:
            return False
        title = f" {normalise_title(catalogue.items[m.item_id].title)} "
        return any(title in o and title != o for o in outside)

    return [m for m in films if not part(m)]


def _unique_films(films: list[Mention]) -> list[Mention]:
    """One mention per film: a stance beats a mere mention; otherwise the first stays."""
    rank = {"liked": 0, "disliked": 0, "seen": 1, "not_seen": 1, "interested": 1, "asked": 2, "mentioned": 3}
    best: dict[str, Mention] = {}
    out: list[Mention] = []
    for m in films:
        key = m.item_id or f"?{m.span.lower()}"
        if key in best:
            if rank.get(m.stance, 3) < rank.get(best[key].stance, 3):
                out[out.index(best[key])] = m
                best[key] = m
            continue
        best[key] = m
        out.append(m)
    return out


def _requests(reading: Reading, films: list[Mention]) -> tuple[Request, ...]:
    """The requests, each targeted one (why, why not, more like) with the film the message asks about."""
    asked = [m for m in films if m.stance == "asked"]
    others = [m for m in films if m.stance != "asked"]
    out = []
    for kind in dict.fromkeys(reading.requests):
        if kind in TARGETED:
            target = asked.pop(0) if asked else (others[0] if len(others) == 1 else None)
            out.append(Request(kind, target.item_id if target else None, target.span if target else ""))
        else:
            out.append(Request(kind))
    return tuple(out)
