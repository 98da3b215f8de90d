"""The chat's fixed vocabulary: genre and mood words, decades and years, card positions, pronouns.

These are the exact parts of understanding — a closed list of genre names and the words people use for
them, "the 90s", "the second one" — so they are rules: fast, deterministic and testable. Readers
(``llmrec.chat.readers``) find the phrases; ``llmrec.chat.linking`` uses these functions to say what a
phrase is. ``genres_in`` and ``decades_in`` also serve ``llmrec.profile.constraints_from_text`` (the
CLI's ``--query``).
"""

from __future__ import annotations

import re

ORDINALS = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3,
    "fourth": 4, "4th": 4, "fifth": 5, "5th": 5, "sixth": 6, "6th": 6,
    "seventh": 7, "7th": 7, "eighth": 8, "8th": 8, "ninth": 9, "9th": 9, "tenth": 10, "10th": 10, "last": -1,
}  # fmt: skip

# Moods and phrases -> genres they point to (MovieLens genre names).
MOODS = {
    "funny": ("Comedy",), "comedy": ("Comedy",), "comedies": ("Comedy",), "laugh": ("Comedy",),
    "hilarious": ("Comedy",), "feel-good": ("Comedy", "Romance"), "feel good": ("Comedy", "Romance"),
    "light": ("Comedy", "Animation"), "lighthearted": ("Comedy",), "light-hearted": ("Comedy",),
    "rom-com": ("Comedy", "Romance"), "romcom": ("Comedy", "Romance"), "rom com": ("Comedy", "Romance"),
    "romantic comedy": ("Comedy", "Romance"), "chick flick": ("Romance", "Comedy"),
    "scary": ("Horror",), "creepy": ("Horror", "Thriller"), "spooky": ("Horror",), "gory": ("Horror",),
    "gore": ("Horror",), "slasher": ("Horror",), "frightening": ("Horror",), "terrifying": ("Horror",),
    "romantic": ("Romance",), "love story": ("Romance",), "love stories": ("Romance",),
    "exciting": ("Action", "Adventure"), "action-packed": ("Action",), "thrilling": ("Thriller",),
    "suspense": ("Thriller", "Mystery"), "suspenseful": ("Thriller", "Mystery"),
    "mind-bending": ("Sci-Fi", "Mystery"), "mind bending": ("Sci-Fi", "Mystery"),
    "twisty": ("Mystery", "Thriller"), "sad": ("Drama",), "emotional": ("Drama",), "serious": ("Drama",),
    "tearjerker": ("Drama",), "dark": ("Crime", "Thriller", "Film-Noir"), "family": ("Children", "Animation"),
    "kids": ("Children", "Animation"), "children": ("Children",), "animated": ("Animation",),
    "animation": ("Animation",), "cartoon": ("Animation",), "cartoons": ("Animation",), "anime": ("Animation",),
    "space": ("Sci-Fi",), "sci-fi": ("Sci-Fi",), "sci fi": ("Sci-Fi",), "science fiction": ("Sci-Fi",),
    "scifi": ("Sci-Fi",), "epic": ("Adventure", "War"), "musical": ("Musical",), "musicals": ("Musical",),
    "western": ("Western",), "westerns": ("Western",), "war": ("War",), "documentary": ("Documentary",),
    "documentaries": ("Documentary",), "docs": ("Documentary",), "crime": ("Crime",), "heist": ("Crime", "Action"),
    "heists": ("Crime", "Action"), "gangster": ("Crime",), "mystery": ("Mystery",), "mysteries": ("Mystery",),
    "whodunit": ("Mystery",), "fantasy": ("Fantasy",), "magic": ("Fantasy",), "adventure": ("Adventure",),
    "adventures": ("Adventure",), "horror": ("Horror",), "thriller": ("Thriller",), "thrillers": ("Thriller",),
    "drama": ("Drama",), "dramas": ("Drama",), "action": ("Action",), "romance": ("Romance",),
    "romances": ("Romance",), "noir": ("Film-Noir",), "film noir": ("Film-Noir",), "film-noir": ("Film-Noir",),
}  # fmt: skip
GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
          "Western")  # fmt: skip
VIOLENT_GENRES = ("Horror", "War", "Crime")

_DECADE = re.compile(r"\b(?:(19|20)?(\d)0)'?s\b")
_DECADE_WORDS = {"twenties": 1920, "thirties": 1930, "forties": 1940, "fifties": 1950, "sixties": 1960,
                 "seventies": 1970, "eighties": 1980, "nineties": 1990}  # fmt: skip
_AFTER = re.compile(r"\b(?:after|since|newer than|later than|from after|post)\s+((?:19|20)\d\d)\b")
_BEFORE = re.compile(r"\b(?:before|older than|earlier than|pre|up to|until)\s+((?:19|20)\d\d)\b")
_HASH_NUMBER = re.compile(r"(?:#|\bnumber\s+|\bno\.\s*)(\d{1,2})\b")
_ORDINAL_WORDS = "|".join(sorted(ORDINALS, key=len, reverse=True))
_ORDINAL = re.compile(rf"\b({_ORDINAL_WORDS})\b(?:\s+(?:one|movie|film|pick|title))?")
_POSITION = re.compile(rf"(?:the\s+|that\s+|this\s+)?({_ORDINAL_WORDS})"
                       r"(?:\s+(?:one|movie|film|pick|title|suggestion))?")
_NEGATED = re.compile(r"\b(?:no|not|nothing|without|avoid|hate|hated|don't like|dont like|do not like|no more|"
                      r"not a fan of|can't stand|cannot stand|skip the|none of the|never)"
                      r"\s+([\w\s-]{2,40})")  # fmt: skip
_FILLER = frozenset(
    """a an the some something anything any good great really very too so more less kind of sort type movie movies
    film films flick flicks one ones stuff thing things genre please that this with and or also like i'm in mood
    for nothing no not without avoid maybe bit little lot fun""".split()
)
_PRONOUNS = frozenset(("it", "that", "this", "that one", "this one", "the movie", "that movie", "this movie",
                       "the film", "that film", "this film", "them", "those", "both", "both of them"))  # fmt: skip


def genres_in(lower: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(wanted, avoided) genres named in lower-cased text, directly or through a mood word."""
    avoided_spans = " ".join(m.group(1) for m in _NEGATED.finditer(lower))
    wanted: list[str] = []
    avoided: list[str] = []
    for word, genres in MOODS.items():
        if re.search(rf"\b{re.escape(word)}\b", avoided_spans):
            avoided += [g for g in genres if g not in avoided]
        elif re.search(rf"\b{re.escape(word)}\b", lower):
            wanted += [g for g in genres if g not in wanted]
    return tuple(g for g in wanted if g not in avoided), tuple(avoided)


def mood_words(lower: str) -> list[str]:
    """The genre and mood words of ``lower`` as written, longest first where they overlap, in text order."""
    found: list[tuple[int, int]] = []
    for word in sorted(MOODS, key=len, reverse=True):
        for m in re.finditer(rf"\b{re.escape(word)}\b", lower):
            if not any(a < m.end() and m.start() < b for a, b in found):
                found.append((m.start(), m.end()))
    return [lower[a:b] for a, b in sorted(found)]


def genre_of(phrase: str) -> tuple[tuple[str, ...], str]:
    """The genres a phrase names and what is left of it: ``"slow sci-fi"`` -> ``(("Sci-Fi",), "slow")``,
    ``"horror movies"`` -> ``(("Horror",), "")``; no genre -> ``((), phrase)``."""
    lower = " ".join(phrase.lower().replace("’", "'").split())
    words = mood_words(lower)
    if not words:
        return (), phrase.strip()
    genres = tuple(dict.fromkeys(g for w in words for g in MOODS[w]))
    rest = lower
    for w in words:
        rest = re.sub(rf"\b{re.escape(w)}\b", " ", rest, count=1)
    left = [w for w in re.findall(r"[\w'-]+", rest) if w not in _FILLER]
    return genres, " ".join(left)


def decades_in(lower: str) -> tuple[int, ...]:
    """Decades named in lower-cased text: "90s", "the 1980s", "2000s", "the eighties"."""
    out = []
    for century, digit in _DECADE.findall(lower):
        century = century or ("20" if digit in "012" else "19")
        out.append(int(f"{century}{digit}0"))
    out += [year for word, year in _DECADE_WORDS.items() if re.search(rf"\b{word}\b", lower)]
    return tuple(out)


def years_in(lower: str) -> tuple[int | None, int | None]:
    """The year range a text asks for: decades ("90s" -> 1990-1999), "after 2000", "before 1980"."""
    decades = decades_in(lower)
    lo = min(decades) if decades else None
    hi = max(decades) + 9 if decades else None
    if m := _AFTER.search(lower):
        lo, hi = int(m.group(1)) + 1, None if hi is not None and hi < int(m.group(1)) else hi
    if m := _BEFORE.search(lower):
        hi = int(m.group(1)) - 1
        lo = None if lo is not None and lo > hi else lo
    return lo, hi


def card_position(phrase: str) -> int | None:
    """The card a phrase points at: "the second one", "#2", "number 3", "the last one" (-1); else None."""
    lower = " ".join(phrase.lower().split())
    if m := _HASH_NUMBER.search(lower):
        return int(m.group(1))
    if m := _POSITION.fullmatch(lower):
        return ORDINALS[m.group(1)]
    return None


def ordinals_in(lower: str) -> tuple[int, ...]:
    """Every card position named anywhere in lower-cased text, in order."""
    found = [int(n) for n in _HASH_NUMBER.findall(lower)]
    found += [ORDINALS[m] for m in _ORDINAL.findall(lower)]
    return tuple(dict.fromkeys(found))


def is_pronoun(phrase: str) -> bool:
    """Whether a phrase is "it", "that one", "the movie"... (the film in focus)."""
    return " ".join(phrase.lower().split()).strip(" .!?") in _PRONOUNS


def filler_only(phrase: str) -> bool:
    """Whether a phrase is only everyday filler ("something", "that kind of movies")."""
    words = re.findall(r"[\w'-]+", phrase.lower())
    return not words or all(w in _FILLER for w in words)
