"""Amazon Reviews (McAuley lab, 2018 and 2023 releases): review and metadata JSON lines, plain or gzipped.

Reviews 2018: ``reviewerID, asin, overall, unixReviewTime`` (seconds). Reviews 2023: ``user_id,
parent_asin`` (else ``asin``), ``rating, timestamp`` (milliseconds). Metadata 2018/2014: ``asin, title,
category`` (or nested ``categories``), ``description, brand, feature, date``; metadata 2023:
``parent_asin, title, main_category, categories, description, features, store, details``.
Only reviewed items enter the catalogue unless asked; reviewed items without metadata get an empty
title, so preprocessing drops them.
"""

from __future__ import annotations

import ast
import html
import json
import logging
import math
import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmrec.data.dataset import Dataset, Interactions
from llmrec.data.generic import read_text_lines
from llmrec.errors import DataError
from llmrec.progress import progress
from llmrec.types import Item

log = logging.getLogger(__name__)

MAX_DESCRIPTION = 2000  # characters
MAX_KEYWORDS = 10
MAX_KEYWORD_CHARS = 100
JSON_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
_MS_THRESHOLD = 10**11  # larger timestamps are milliseconds (10^11 s is the year 5138)


def load_amazon(
    reviews_path: str | Path,
    meta_path: str | Path | None = None,
    name: str | None = None,
    keep_unreviewed: bool = False,
) -> Dataset:
    """Load Amazon reviews and, when given, their metadata; ``name`` defaults to the reviews file's stem."""
    reviews_path = Path(reviews_path)
    users, item_ids, ratings, stamps = _read_reviews(reviews_path)
    reviewed = dict.fromkeys(item_ids)
    items: dict[str, Item] = {}
    if meta_path is None:
        log.warning("no metadata for %s: items have no titles and preprocessing will drop them", reviews_path)
    else:
        wanted = None if keep_unreviewed else reviewed.keys()
        items = _read_meta(Path(meta_path), wanted)
    missing = [i for i in reviewed if i not in items]
    if missing:
        log.warning("%d of %d reviewed items have no metadata (no title)", len(missing), len(reviewed))
    for item_id in missing:
        items[item_id] = Item(item_id, "")
    interactions = Interactions.from_columns(users, item_ids, ratings, stamps)
    log.info("loaded %d reviews of %d items from %s", len(interactions), len(reviewed), reviews_path)
    return Dataset(name or _stem(reviews_path), items, interactions, source=str(reviews_path))


def find_amazon_files(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """``(review files, metadata files)`` in ``folder`` by name: ``*meta*`` is metadata, ``*review*`` reviews.

    The official names (``All_Beauty.jsonl.gz`` beside ``meta_All_Beauty.jsonl.gz``) also count: one
    non-meta JSON file beside a metadata file is the reviews file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return [], []
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(JSON_SUFFIXES))
    metas = [p for p in files if "meta" in p.name.lower()]
    others = [p for p in files if p not in metas]
    reviews = [p for p in others if "review" in p.name.lower()]
    if not reviews and metas and len(others) == 1:
        reviews = others
    return reviews, metas


def is_amazon_folder(folder: str | Path) -> bool:
    """True when ``folder`` holds an Amazon reviews file (see ``find_amazon_files``)."""
    return bool(find_amazon_files(folder)[0])


def load_amazon_folder(folder: str | Path, name: str | None = None) -> Dataset:
    """Load the one reviews file and the one metadata file in ``folder``; ``name`` defaults to the folder's name."""
    folder = Path(folder)
    reviews, metas = find_amazon_files(folder)
    expected = (("reviews", reviews, "*reviews*.jsonl[.gz]"), ("metadata", metas, "*meta*.jsonl[.gz]"))
    for kind, found, pattern in expected:
        if not found:
            raise DataError(f"{folder} has no Amazon {kind} file ({pattern}); see docs/data-formats.md")
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise DataError(f"{folder} has several Amazon {kind} files ({names}); keep one per folder")
    return load_amazon(reviews[0], metas[0], name or folder.name)


# ---------------------------------------------------------------------------------------------- reviews


def _read_reviews(path: Path) -> tuple[list[str], list[str], list[float], list[int]]:
    users: list[str] = []
    items: list[str] = []
    ratings: list[float] = []
    stamps: list[int] = []
    for line, record in progress(_json_lines(path), desc=f"reading {path.name}", unit="reviews"):
        if "reviewerID" in record:  # 2018 (and 2014)
            user, item = _field(record, "reviewerID", path, line), _field(record, "asin", path, line)
            rating, stamp = record.get("overall"), _stamp_2018(record, path, line)
        elif "user_id" in record:  # 2023
            user = _field(record, "user_id", path, line)
            item = str(record.get("parent_asin") or _field(record, "asin", path, line))
            rating, stamp = record.get("rating"), _number(record, "timestamp", path, line)
            stamp = stamp // 1000 if stamp > _MS_THRESHOLD else stamp
        else:
            raise DataError(f"{path}, line {line}: no 'reviewerID' (2018) or 'user_id' (2023); not an Amazon review")
        users.append(user)
        items.append(item)
        ratings.append(_rating(rating, path, line))
        stamps.append(stamp)
    if not users:
        raise DataError(f"{path} holds no reviews; check the file")
    return users, items, ratings, stamps


def _stamp_2018(record: dict[str, Any], path: Path, line: int) -> int:
    if "unixReviewTime" in record:
        return _number(record, "unixReviewTime", path, line)
    text = str(record.get("reviewTime", ""))
    try:  # "09 13, 2009"
        return int(datetime.strptime(text, "%m %d, %Y").replace(tzinfo=timezone.utc).timestamp())
    except ValueError:
        raise DataError(f"{path}, line {line}: no 'unixReviewTime' and no readable 'reviewTime'; fix the row") from None


def _field(record: dict[str, Any], key: str, path: Path, line: int) -> str:
    value = record.get(key)
    if value is None or isinstance(value, (dict, list)) or not str(value).strip():
        raise DataError(f"{path}, line {line}: field {key!r} is missing or empty; fix or remove the row")
    return str(value).strip()


def _number(record: dict[str, Any], key: str, path: Path, line: int) -> int:
    value = record.get(key)
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{path}, line {line}: field {key!r} = {value!r} is not a whole number") from None


def _rating(value: Any, path: Path, line: int) -> float:
    if value is None:
        return math.nan
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{path}, line {line}: rating {value!r} is not a number; fix or remove the row") from None
    return number if math.isfinite(number) else math.nan


# ---------------------------------------------------------------------------------------------- metadata


def _read_meta(path: Path, wanted: Iterable[str] | None) -> dict[str, Item]:
    wanted_set = set(wanted) if wanted is not None else None
    items: dict[str, Item] = {}
    for line, record in progress(_json_lines(path, loose=True), desc=f"reading {path.name}", unit="items"):
        item_id = str(record.get("parent_asin") or _field(record, "asin", path, line))
        if item_id in items or (wanted_set is not None and item_id not in wanted_set):
            continue
        items[item_id] = meta_item(item_id, record)
    return items


def meta_item(item_id: str, record: dict[str, Any]) -> Item:
    """One metadata record (2014, 2018 or 2023 schema) as an Item."""
    categories = _flatten(record.get("categories") or record.get("category"))
    main = _clean(record.get("main_category") or record.get("main_cat"))
    genres = _unique(categories or ([main] if main else []))
    details = record.get("details") if isinstance(record.get("details"), dict) else {}
    brand = _clean(record.get("brand") or record.get("store") or details.get("Brand"))
    features = [f for f in _flatten(record.get("features") or record.get("feature")) if len(f) <= MAX_KEYWORD_CHARS]
    keywords = _unique(([brand] if brand else []) + features)[:MAX_KEYWORDS]
    description = _clean(" ".join(_flatten(record.get("description"))))
    if len(description) > MAX_DESCRIPTION:
        description = description[:MAX_DESCRIPTION].rsplit(" ", 1)[0] + "…"
    return Item(item_id, _clean(record.get("title")), _year(record, details), genres, keywords, (), description)


def _year(record: dict[str, Any], details: dict[str, Any]) -> int | None:
    dates = [record.get("date")] + [v for k, v in details.items() if "date" in str(k).lower()]
    for value in dates:
        match = _YEAR.search(str(value)) if isinstance(value, (str, int)) else None
        if match:
            return int(match.group(1))
    return None


def _flatten(value: Any) -> list[str]:
    """Strings from a string, a list or nested lists (2014 ``categories``), cleaned, empties dropped."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _flatten(v)]
    text = _clean(value)
    return [text] if text else []


def _clean(value: Any) -> str:
    """Plain text: HTML entities decoded, tags removed, whitespace collapsed."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    return _SPACE.sub(" ", _TAG.sub(" ", html.unescape(str(value)))).strip()


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


# ---------------------------------------------------------------------------------------------- files


def _json_lines(path: Path, loose: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """JSON objects a line; ``loose`` also reads the 2014 metadata's Python-literal lines."""
    if not path.is_file():
        raise DataError(f"Amazon file {path} not found; check the path")
    for line, text in read_text_lines(path):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            record = _literal(text) if loose else None
            if record is None:
                raise DataError(f"{path}, line {line}: invalid JSON ({exc.msg}); fix or remove the line") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {line}: expected a JSON object, got {type(record).__name__}")
        yield line, record


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in JSON_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
