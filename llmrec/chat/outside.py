"""Films the user names that the rated catalogue lacks: MovieLens-25M's full list (``movies_all.csv``).

The rated data set (ml-latest-small: 9,742 films up to 2018) is what the recommender can recommend; people
also name newer or rarer films ("I loved Parasite (2019)"). ``ml-25m-keywords/movies_all.csv`` under the data
folder lists 62,423 films with MovieLens' ids, genres and keywords but no ratings. When a title links to no
rated film, linking (``llmrec.chat.linking``) asks this wider list through the same matcher, stricter: the
title must match exactly (an alternate title or the main title before ':' counts; a year given must be within
one), because fuzzy spelling over 50,000 more titles would turn ordinary phrases into obscure films.

Such a film is kept in the chat state (``ChatState.outside_liked`` / ``outside_disliked``) and reaches the
recommender as text: its title, genres and keywords become a stated preference (``preference_text``), so the
text retriever finds films like it. It is never a candidate (it is not in the vector store), never a card.

The list loads once per data folder and rated catalogue, on the first title that needs it; no file (or a data
set whose ids are not MovieLens') means the feature is off, and linking behaves as before.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from llmrec.chat.linking import Catalogue, find_film
from llmrec.errors import DataError
from llmrec.profile import normalise_title, split_title_year
from llmrec.types import Item

log = logging.getLogger(__name__)

MOVIELENS_IDS = ("ml-latest-small", "ml-1m", "ml-20m", "ml-25m", "ml-32m")  # data sets with MovieLens' film ids
PREFERENCE_KEYWORDS = 4  # keywords of an outside film in the text preference it becomes
_STOPS = re.compile(r"[,.;!?]+")
_WORD = re.compile(r"[a-z0-9]+")  # a negative preference ends at these (``parse_preferences``)


@dataclass(eq=False)
class OutsideFilms(Mapping[str, Item]):
    """The films of ``data_dir``'s ``movies_all.csv`` whose ids the rated catalogue lacks: a mapping by id that
    loads on first use (looking an id up loads it; holding one does not). Each film's keywords come rarest first
    (over the whole list), so the few a preference takes say the most ("social commentary", not "original")."""

    data_dir: Path
    rated: Mapping[str, Item]
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _items: Mapping[str, Item] | None = field(default=None, repr=False, compare=False)

    @property
    def items(self) -> Mapping[str, Item]:
        """Outside films by id; empty when the file cannot be read (logged once, never an error)."""
        if self._items is None:
            with self._lock:  # one load when several sessions ask at once
                if self._items is None:
                    self._items = self._load()
        return self._items

    def _load(self) -> Mapping[str, Item]:
        from llmrec.data.redial import MOVIES_ALL_FILE, load_movies_all

        try:
            every = load_movies_all(self.data_dir)
        except (DataError, OSError, ValueError) as exc:
            log.warning("films outside the rated catalogue are off: %s", exc)
            return {}
        log.info("loaded %d films outside the rated catalogue from %s", len(every), self.data_dir / MOVIES_ALL_FILE)
        counts = Counter(k for item in every.values() for k in item.keywords)
        return {i: replace(item, keywords=tuple(sorted(item.keywords, key=lambda k: counts[k])))
                for i, item in every.items() if i not in self.rated}  # fmt: skip

    def __getitem__(self, item_id: str) -> Item:
        return self.items[item_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @cached_property
    def words(self) -> dict[str, tuple[str, ...]]:
        """Each word of the titles -> the films whose title has it (built once: a cheap gate to the few titles
        worth normalising; normalising all 50,000 titles took seconds)."""
        index: dict[str, list[str]] = {}
        for item_id, item in self.items.items():
            title = item.title if item.title.isascii() else normalise_title(item.title)
            for word in set(_WORD.findall(title.lower())):
                index.setdefault(word, []).append(item_id)
        return {word: tuple(ids) for word, ids in index.items()}

    def named(self, key: str) -> list[str]:
        """The films one of whose titles (``_forms``) normalises to ``key``."""
        words = [w for w in key.split() if w != "and"]  # "and" may stand for "&"
        found = [self.words.get(w, ()) for w in words]
        if not words or not all(found):
            return []
        return [i for i in min(found, key=len) if key in {normalise_title(f) for f in _forms(self.items[i].title)}]

    def find(self, phrase: str) -> tuple[str | None, tuple[str, ...]]:
        """``(item id, options)`` for a title one outside film (or several: ask) carries exactly, its year within
        one when given; else ``(None, ())``. The exact titles narrow the list to a few films, and the chat's
        matcher (``linking.find_film``) picks among them as it does in the rated catalogue: the year, several
        sharing a title (ask), a main title ("Kill Bill"). No search for the closest spelling among 50,000."""
        title, year = split_title_year(phrase)
        key = normalise_title(title)
        if not key or not self.items:
            return None, ()
        ids = [i for i in self.named(key) if year is None or _near(self.items[i].year, year)]
        if not ids:
            return None, ()
        few = Catalogue({i: self.items[i] for i in ids}, {})
        item_id, options, _ = find_film(phrase, few)
        if item_id is not None:
            return (item_id, ()) if names(phrase, self.items[item_id]) else (None, ())
        options = tuple(i for i in options if names(phrase, self.items[i]))
        return (options[0], ()) if len(options) == 1 else (None, options)


def _near(item_year: int | None, year: int) -> bool:
    return item_year is None or abs(item_year - year) <= 1


def _forms(title: str) -> tuple[str, ...]:
    """A title's names: itself, before " (", its alternate title ("a.k.a."), and its main title (before ':')."""
    main, _, rest = title.partition(" (")
    return title, main, re.sub(r"^a\.k\.a\.\s*", "", rest.rstrip(")")), re.split(r"\s*(?::|\s-\s)\s*", main)[0]


def names(phrase: str, item: Item) -> bool:
    """Whether ``phrase`` ("Title" or "Title (Year)") is one of ``item``'s titles exactly, its year within one."""
    title, year = split_title_year(phrase)
    if year is not None and not _near(item.year, year):
        return False
    key = normalise_title(title)
    return bool(key) and key in {normalise_title(f) for f in _forms(item.title)}


_CACHE: dict[tuple[Path, int], tuple[Mapping[str, Item], OutsideFilms]] = {}
_CACHE_LOCK = threading.Lock()


def outside_films(recommender: Any) -> OutsideFilms | None:
    """The outside films for ``recommender``'s data set and data folder (shared by its variants and
    conversations), or None: no data folder, no ``movies_all.csv`` there, or a data set with other ids."""
    config = getattr(recommender, "config", None)
    data = getattr(config, "data", None)
    if data is None or data.data_dir is None or data.dataset not in MOVIELENS_IDS:
        return None
    from llmrec.data.redial import MOVIES_ALL_FILE

    data_dir = Path(data.data_dir).expanduser().resolve()
    if not (data_dir / MOVIES_ALL_FILE).is_file():
        return None
    rated = recommender.items
    key = (data_dir, id(rated))
    with _CACHE_LOCK:
        held = _CACHE.get(key)
        if held is None or held[0] is not rated:
            held = (rated, OutsideFilms(data_dir, rated))
            _CACHE[key] = held
            while len(_CACHE) > 4:
                _CACHE.pop(next(iter(_CACHE)))
        return held[1]


def preference_text(item: Item, liked: bool = True) -> str:
    """What an outside film says about the user's taste, as a stated preference the text retriever embeds:
    "films like Parasite (2019): comedy, drama, social commentary" (liked), or a negative "nothing like ..." phrase
    (disliked; one clause, so ``parse_preferences`` reads all of it as the negative)."""
    words = [*(g.lower() for g in item.genres), *item.keywords[:PREFERENCE_KEYWORDS]]
    if liked:
        return f"films like {item.display_title}: " + ", ".join(words) if words else f"films like {item.display_title}"
    return _STOPS.sub(" ", " ".join(["nothing like", item.display_title, *words])).strip()
