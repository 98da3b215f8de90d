"""User profiles from a data set's history, from liked titles and from stated preferences.

- ``history_profile``: a known user's ratings; an unknown id gives a newcomer profile with a note,
  never anyone else's data.
- ``resolve_title`` / ``likes_profile``: ``"Toy Story (1995)"`` matched to a catalogue item by
  normalised title (articles moved, punctuation dropped, alternate titles in brackets), with the
  year to choose among remakes; an unknown title is a DataError naming the three closest.
- ``parse_preferences``: ``"slow sci-fi, nothing gory"`` -> positive text ``"slow sci-fi"`` and
  negatives ``("gory",)``. The profile keeps the text as said; retrievers derive the parts.
- ``liked_weights``: which history items count as liked (rating >= the user's mean or >= 4; all of
  them when there are no ratings) and how much, favouring recent and highly rated ones.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from llmrec.errors import DataError
from llmrec.types import Constraints, HistoryEntry, Item, UserProfile

if TYPE_CHECKING:
    from llmrec.data.dataset import Dataset

LIKED_RATING = 4.0
HALF_LIFE = 20.0  # liked items: the weight halves every HALF_LIFE more recent liked items
MAX_LIKED = 200
MATCH_CUTOFF = 88.0
_ARTICLES = ("the", "a", "an", "les", "la", "le", "il", "el", "die", "der", "das", "l'")


# -- history ---------------------------------------------------------------------------------
def history_profile(dataset: Dataset, user_id: str) -> UserProfile:
    """The user's interactions in time order; an unknown id is a newcomer (empty history) with a note."""
    inter = dataset.interactions
    rows = np.flatnonzero(inter.user_ids == str(user_id))
    if rows.size == 0:
        return UserProfile(user_id=str(user_id), notes=(
            f"user {user_id!r} is not in data set {dataset.name!r}: treated as a newcomer with no history; "
            "add --like TITLE or --query TEXT to say what they enjoy",))  # fmt: skip
    rows = rows[np.argsort(inter.timestamps[rows], kind="stable")]
    ratings = [None if np.isnan(inter.ratings[r]) else float(inter.ratings[r]) for r in rows]
    history = tuple(
        HistoryEntry(str(inter.item_ids[r]), rating, int(inter.timestamps[r])) for r, rating in zip(rows, ratings)
    )
    return UserProfile(user_id=str(user_id), history=history)


def liked_weights(profile: UserProfile, half_life: float = HALF_LIFE, limit: int = MAX_LIKED) -> dict[str, float]:
    """Liked history items -> weight (recency decay x rating above the user's mean), most recent first."""
    entries = list(profile.history)
    if not entries:
        return {}
    order = sorted(range(len(entries)), key=lambda i: (entries[i].timestamp is None, entries[i].timestamp or 0, i))
    entries = [entries[i] for i in order]  # oldest first; entries without a time keep their given order
    rated = [e.rating for e in entries if e.rating is not None]
    mean = float(np.mean(rated)) if rated else 0.0
    liked = [e for e in entries if e.rating is None or e.rating >= mean or e.rating >= LIKED_RATING]
    disliked = frozenset(profile.disliked) | frozenset(profile.excluded)
    weights: dict[str, float] = {}
    for age, entry in enumerate(reversed(liked)):
        if len(weights) >= limit:
            break
        if entry.item_id in disliked or entry.item_id in weights:
            continue
        rating_weight = 1.0 if entry.rating is None or not rated else 1.0 + max(0.0, entry.rating - mean)
        weights[entry.item_id] = rating_weight * math.pow(0.5, age / half_life)
    return weights


# -- stated preferences ----------------------------------------------------------------------
_NEGATION = re.compile(
    r"\b(?:nothing(?:\s+too)?|no(?:\s+more)?|not(?:\s+too)?|without|avoid|hate|never|don'?t\s+(?:like|want)"
    r"|do\s+not\s+(?:like|want)|except)\s+([^,.;!?]+)",
    re.IGNORECASE,
)


_FILLER = frozenset("i i'm im me my we us you but and or just please really also".split())


@dataclass(frozen=True)
class PreferenceText:
    """A stated preference split into what to look for and what to push down."""

    text: str
    positive: str
    negatives: tuple[str, ...]


def parse_preferences(text: str) -> PreferenceText:
    """``"slow sci-fi, nothing gory"`` -> positive ``"slow sci-fi"``, negatives ``("gory",)``."""
    negatives: list[str] = []
    for match in _NEGATION.finditer(text):
        for part in re.split(r"\s+(?:or|and|nor)\s+|/", match.group(1)):
            part = re.sub(r"^(?:too|very|overly|so|any|anything|really)\s+", "", part.strip(), flags=re.IGNORECASE)
            if part and part.lower() not in (n.lower() for n in negatives):
                negatives.append(part)
    positive = _NEGATION.sub(" ", text)
    positive = re.sub(r"\s*[,;]\s*(?=[,;]|$)", "", " ".join(positive.split())).strip(" ,;.-")
    positive = re.sub(r"\b(?:but|and|with)$", "", positive, flags=re.IGNORECASE).strip(" ,;.-")
    if all(w.lower() in _FILLER for w in re.findall(r"[\w'-]+", positive)):
        positive = ""
    return PreferenceText(text=text, positive=positive, negatives=tuple(negatives))


def with_preferences(profile: UserProfile, texts: Iterable[str]) -> UserProfile:
    """The profile with these stated preferences added (kept verbatim, blanks dropped)."""
    new = tuple(t.strip() for t in texts if t and t.strip())
    return replace(profile, stated_preferences=profile.stated_preferences + new) if new else profile


# -- liked titles ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TitleMatch:
    query: str
    item_id: str
    score: float
    note: str = ""


def normalise_title(title: str) -> str:
    """Lower case, accents and punctuation dropped, a leading or trailing article removed."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"&", " and ", text)
    for article in _ARTICLES:
        text = re.sub(rf",\s*{re.escape(article)}$", "", text)
        text = re.sub(rf"^{re.escape(article)}\s+", "", text)
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text).split())


def split_title_year(query: str) -> tuple[str, int | None]:
    """``"Heat (1995)"`` -> ``("Heat", 1995)``; a title without a year gets None."""
    m = re.match(r"^\s*(.*?)\s*\((\d{4})\)\s*$", query)
    return (m.group(1), int(m.group(2))) if m else (query.strip(), None)


@lru_cache(maxsize=4)
def _aliases(items: tuple[tuple[str, str, int | None], ...]) -> tuple[list[str], list[int]]:
    names: list[str] = []
    owners: list[int] = []
    for pos, (_, title, _) in enumerate(items):
        forms = {normalise_title(title)}
        main, _, rest = title.partition(" (")
        if rest:  # "Seven (a.k.a. Se7en)", "Postman, The (Postino, Il)"
            forms.add(normalise_title(main))
            forms.add(normalise_title(re.sub(r"^a\.k\.a\.\s*", "", rest.rstrip(")"))))
        for form in forms - {""}:
            names.append(form)
            owners.append(pos)
    return names, owners


def resolve_title(query: str, items: Mapping[str, Item], popularity: Mapping[str, int] | None = None) -> TitleMatch:
    """The catalogue item a person means by ``query``; DataError with the closest three when unsure."""
    from rapidfuzz import fuzz, process

    title, year = split_title_year(query)
    wanted = normalise_title(title)
    if not wanted:
        raise DataError(f"--like {query!r} has no title in it; write it as 'Title (Year)'")
    table = tuple((iid, it.title, it.year) for iid, it in items.items())
    names, owners = _aliases(table)
    best: dict[int, float] = {}
    exact: set[int] = set()
    for name, score, at in process.extract(wanted, names, scorer=fuzz.ratio, limit=50, score_cutoff=60):
        pos = owners[at]
        item_year = table[pos][2]
        if name == wanted:
            exact.add(pos)
        if year is not None and item_year is not None:
            score += 5.0 if item_year == year else (-3.0 if abs(item_year - year) == 1 else -15.0)
        best[pos] = max(best.get(pos, -1.0), score)
    popular = popularity or {}
    ranked = sorted(best, key=lambda p: (-best[p], -popular.get(table[p][0], 0), p))
    if not ranked or best[ranked[0]] < MATCH_CUTOFF:
        raise DataError(f"no title like {query!r} in the catalogue; closest: {', '.join(_closest(wanted, items))}")
    top = ranked[0]
    ties = [p for p in ranked[1:] if best[p] >= best[top] - 1e-9]
    item = items[table[top][0]]
    note = ""
    if ties:
        others = ", ".join(items[table[p][0]].display_title for p in ties[:3])
        note = f"{query!r} also matches {others}; chose {item.display_title} (add the year to pick another)"
    elif top not in exact or (year is not None and item.year != year):
        note = f"{query!r} read as {item.display_title}"
    return TitleMatch(query=query, item_id=table[top][0], score=best[top], note=note)


def _closest(wanted: str, items: Mapping[str, Item], n: int = 3) -> list[str]:
    from rapidfuzz import fuzz, process

    table = tuple((iid, it.title, it.year) for iid, it in items.items())
    names, owners = _aliases(table)
    seen: list[str] = []
    for _, _, at in process.extract(wanted, names, scorer=fuzz.WRatio, limit=n * 4):
        shown = repr(items[table[owners[at]][0]].display_title)
        if shown not in seen:
            seen.append(shown)
        if len(seen) == n:
            break
    return seen


def likes_profile(titles: Sequence[str], items: Mapping[str, Item], base: UserProfile | None = None,
                  popularity: Mapping[str, int] | None = None) -> UserProfile:  # fmt: skip
    """``base`` (or a newcomer) plus the liked titles as history entries without rating or time."""
    profile = base or UserProfile()
    have = {e.item_id for e in profile.history}
    entries = list(profile.history)
    notes = list(profile.notes)
    for title in titles:
        match = resolve_title(title, items, popularity)
        if match.note:
            notes.append(match.note)
        if match.item_id not in have:
            have.add(match.item_id)
            entries.append(HistoryEntry(match.item_id, rating=None, timestamp=None))
    return replace(profile, history=tuple(entries), notes=tuple(notes))


def constraints_from_text(text: str) -> Constraints:
    """The exact limits a request states in words: genres named (or moods that name them), genres after a
    negation ("nothing gory"), and decades ("from the 2000s" -> 2000-2009). Rules, because these phrases are
    few and regular; everything else in the text is left to the retrievers (and the language model)."""
    from llmrec.chat.intents import decades_in, genres_in

    lower = " ".join(text.lower().split())
    wanted, avoided = genres_in(lower)
    decades = decades_in(lower)
    return Constraints(wanted_genres=wanted, avoided_genres=avoided,
                       year_min=min(decades) if decades else None,
                       year_max=max(decades) + 9 if decades else None)  # fmt: skip


def build_profile(dataset: Dataset, user: str | None = None, likes: Sequence[str] = (),
                  query: str | None = None) -> UserProfile:  # fmt: skip
    """One profile from any mix of a user id, liked titles and a stated preference (whose genres, negated
    genres and decades become the profile's constraints)."""
    profile = history_profile(dataset, user) if user is not None else UserProfile()
    if likes:
        ids, counts = np.unique(dataset.interactions.item_ids, return_counts=True)
        profile = likes_profile(likes, dataset.items, profile, dict(zip(ids.tolist(), counts.tolist())))
    if query:
        profile = replace(with_preferences(profile, [query]), constraints=constraints_from_text(query))
    return profile
