"""Netflix Prize: ``movie_titles.csv`` plus ratings as ``training_set/mv_*.txt`` or Kaggle's ``combined_data_*.txt``.

Titles (latin-1): ``MovieID,YearOfRelease,Title``, the title may hold commas and the year may be
``NULL``. Ratings: a ``MovieID:`` line, then ``CustomerID,Rating,YYYY-MM-DD`` lines; a mv_ file holds
one movie, a combined_data file many. Dates become unix seconds at UTC midnight. The rating files
reach 100 million lines, so they are read line by line and never held as text.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

from llmrec.data.dataset import Dataset, Interactions
from llmrec.errors import DataError
from llmrec.progress import progress
from llmrec.types import Item

log = logging.getLogger(__name__)

TITLE_FILES = ("movie_titles.csv", "movie_titles.txt")  # Kaggle's name, then the original's
ENCODING = "latin-1"
_EPOCH = date(1970, 1, 1).toordinal()


def find_netflix_files(folder: str | Path) -> tuple[Path | None, list[Path]]:
    """``(titles file, rating files)`` in ``folder``; ``training_set/mv_*.txt`` wins over ``combined_data_*.txt``."""
    folder = Path(folder)
    titles = next((folder / n for n in TITLE_FILES if (folder / n).is_file()), None)
    singles = sorted((folder / "training_set").glob("mv_*.txt")) if (folder / "training_set").is_dir() else []
    combined = sorted(folder.glob("combined_data_*.txt"))
    if singles and combined:
        log.warning("%s holds training_set/ and combined_data_*.txt; reading training_set/ only", folder)
    return titles, singles or combined


def is_netflix_folder(folder: str | Path) -> bool:
    """True when ``folder`` holds a movie titles file and at least one rating file."""
    titles, ratings = find_netflix_files(folder)
    return titles is not None and bool(ratings)


def load_netflix(folder: str | Path, name: str | None = None) -> Dataset:
    """Load a Netflix Prize folder (either layout); ``name`` defaults to the folder's name."""
    folder = Path(folder)
    titles, rating_files = find_netflix_files(folder)
    if titles is None:
        raise DataError(f"{folder} has no movie_titles.csv; pass the folder of the Netflix Prize data")
    if not rating_files:
        raise DataError(f"{folder} has neither training_set/mv_*.txt nor combined_data_*.txt; check the folder")
    items = read_titles(titles)
    users: list[str] = []
    movies: list[str] = []
    ratings: list[float] = []
    stamps: list[int] = []
    columns = (users, movies, ratings, stamps)
    customers: dict[str, str] = {}  # one string object per customer, shared by all their ratings
    for path in progress(rating_files, desc="reading Netflix ratings", unit="file"):
        _read_ratings(path, columns, customers)
    unknown = {m for m in set(movies) if m not in items}
    if unknown:
        example = min(unknown, key=int)
        raise DataError(
            f"{folder}: ratings name {len(unknown)} movie id(s) missing from {titles.name}, e.g. {example}; "
            f"use the titles file that came with the ratings"
        )
    log.info("loaded %d ratings of %d movies from %s", len(users), len(items), folder)
    return Dataset(name or folder.name, items, Interactions.from_columns(users, movies, ratings, stamps), str(folder))


def read_titles(path: Path) -> dict[str, Item]:
    """``MovieID,YearOfRelease,Title`` lines (latin-1) as Items keyed by MovieID."""
    items: dict[str, Item] = {}
    with open(path, encoding=ENCODING, newline="") as fh:
        for number, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(",", 2)
            if len(parts) < 3 or not parts[0].strip().isdigit():
                raise DataError(f"{path}, line {number}: expected MovieID,YearOfRelease,Title, got {line[:60]!r}")
            movie, year, title = (p.strip() for p in parts)
            if year.upper() in ("NULL", ""):
                release = None
            elif year.isdigit():
                release = int(year)
            else:
                raise DataError(f"{path}, line {number}: YearOfRelease {year!r} is neither a year nor NULL")
            if movie in items:
                raise DataError(f"{path}, line {number}: MovieID {movie} appears twice; fix the titles file")
            items[movie] = Item(movie, title, release)
    return items


def _read_ratings(path: Path, columns: tuple[list, list, list, list], customers: dict[str, str]) -> None:
    """Append one rating file's rows to the column lists (``N:`` blocks of ``customer,rating,date``)."""
    users, movies, ratings, stamps = columns
    days: dict[str, int] = {}  # date text -> unix seconds; a few thousand distinct dates
    movie: str | None = None
    with open(path, encoding=ENCODING) as fh:
        for number, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            if line.endswith(":"):
                movie = line[:-1].strip()
                if not movie.isdigit():
                    raise DataError(f"{path}, line {number}: movie header {line!r} is not 'MovieID:'")
                continue
            if movie is None:
                raise DataError(f"{path}, line {number}: rating before the first 'MovieID:' line; check the file")
            try:
                customer, score, day = line.split(",")
                if not customer.strip():
                    raise ValueError(customer)
                stamp = days.get(day)
                if stamp is None:
                    stamp = days[day] = (date.fromisoformat(day).toordinal() - _EPOCH) * 86400
                value = int(score)
            except ValueError:
                raise DataError(
                    f"{path}, line {number}: expected CustomerID,Rating,YYYY-MM-DD, got {line[:60]!r}"
                ) from None
            users.append(customers.setdefault(customer, customer))
            movies.append(movie)
            ratings.append(float(value))
            stamps.append(stamp)
