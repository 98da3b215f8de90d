"""The generic format for people's own data: ``items.csv|jsonl`` plus ``interactions.csv|jsonl``.

The format is specified in docs/data-formats.md. Parsing is strict and one row at a time: a bad
value stops the load with a DataError naming the file, the line, the column and what is wrong.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import math
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmrec.data.dataset import Dataset, Interactions
from llmrec.errors import DataError
from llmrec.fileutil import atomic_file
from llmrec.progress import progress
from llmrec.types import Item

log = logging.getLogger(__name__)

FORMATS = ("csv", "jsonl")
ITEM_COLUMNS = ("item_id", "title", "year", "genres", "keywords", "tags", "description")
INTERACTION_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
LIST_SEPARATOR = "|"
_LIST_COLUMNS = ("genres", "keywords", "tags")
_INTEGER = re.compile(r"^[+-]?\d+$")
_BOM = b"\xef\xbb\xbf"


def is_generic_folder(folder: str | Path) -> bool:
    """True when ``folder`` holds an items file and an interactions file in the generic format."""
    folder = Path(folder)
    return any((folder / f"items.{f}").is_file() for f in FORMATS) and any(
        (folder / f"interactions.{f}").is_file() for f in FORMATS
    )


def load_generic(folder: str | Path, name: str | None = None) -> Dataset:
    """Load ``folder`` (generic format); ``name`` defaults to the folder's name."""
    folder = Path(folder)
    items_path = _pick(folder, "items")
    inter_path = _pick(folder, "interactions")
    items = _read_items(items_path)
    interactions = _read_interactions(inter_path, items_path, items)
    log.info("loaded %d items and %d interactions from %s", len(items), len(interactions), folder)
    return Dataset(name or folder.name, items, interactions, source=str(folder))


def write_generic(dataset: Dataset, folder: str | Path, fmt: str = "csv") -> Path:
    """Write ``dataset`` into ``folder`` as ``items.<fmt>`` and ``interactions.<fmt>``; returns the folder."""
    if fmt not in FORMATS:
        raise DataError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    folder = Path(folder)
    for other in FORMATS:
        for stem in ("items", "interactions"):
            if other != fmt and (folder / f"{stem}.{other}").exists():
                raise DataError(f"{folder} already holds {stem}.{other}; export {fmt} into another folder")
    inter = dataset.interactions
    item_rows = [_item_row(item) for item in dataset.items.values()]
    inter_rows = (
        {"user_id": str(u), "item_id": str(i), "rating": None if math.isnan(r) else float(r), "timestamp": int(t)}
        for u, i, r, t in zip(inter.user_ids, inter.item_ids, inter.ratings, inter.timestamps, strict=True)
    )
    _write_rows(folder / f"items.{fmt}", ITEM_COLUMNS, item_rows, fmt)
    _write_rows(folder / f"interactions.{fmt}", INTERACTION_COLUMNS, inter_rows, fmt)
    log.info("wrote %s (%s) to %s", dataset.name, fmt, folder)
    return folder


# ---------------------------------------------------------------------------------------------- reading


def read_text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 file (``.gz`` unpacked on the fly), without a leading BOM.

    Invalid UTF-8 is a DataError naming the file and line.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            for number, raw in enumerate(fh, 1):
                if number == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM) :]
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(
                        f"{path}, line {number}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at character "
                        f"{exc.start + 1}); save the file as UTF-8"
                    ) from None
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read {path}: {exc}; check the file is complete") from None


def read_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for each row of a CSV (header line first) or JSONL file; blank lines skipped."""
    if path.name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
        yield from _jsonl_records(path)
    else:
        yield from _csv_records(path)


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, text in read_text_lines(path):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {number}: invalid JSON ({exc.msg}); one JSON object per line") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}")
        yield number, record


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    lines = (text for _, text in read_text_lines(path))
    reader = csv.reader(lines)
    try:
        header = [h.strip() for h in next(reader, [])]
        if not header:
            raise DataError(f"{path} is empty; the first line must name the columns")
        if len(set(header)) != len(header):
            raise DataError(f"{path}, line 1: a column name appears twice in the header {header}")
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path}, line {reader.line_num}: {len(row)} fields but the header has {len(header)}; "
                    f"quote values that contain commas"
                )
            yield reader.line_num, dict(zip(header, row, strict=True))
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: malformed CSV ({exc}); check the quoting") from None


def _pick(folder: Path, stem: str) -> Path:
    found = [folder / f"{stem}.{fmt}" for fmt in FORMATS if (folder / f"{stem}.{fmt}").is_file()]
    if not found:
        raise DataError(f"{folder} has no {stem}.csv or {stem}.jsonl; see docs/data-formats.md")
    if len(found) > 1:
        raise DataError(f"{folder} holds both {stem}.csv and {stem}.jsonl; keep one of them")
    return found[0]


class _Row:
    """One record with its location, so every conversion error can name file, line and column."""

    def __init__(self, path: Path, line: int, record: dict[str, Any]) -> None:
        self.path, self.line, self.record = path, line, record

    def fail(self, column: str, problem: str, fix: str = "fix or remove the row") -> DataError:
        return DataError(f"{self.path}, line {self.line}, column {column!r}: {problem}; {fix}")

    def text(self, column: str, required: bool = False) -> str:
        value = self.record.get(column)
        if value is None:
            if required and column not in self.record:
                raise self.fail(column, "missing")
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.fail(column, f"expected text, got {type(value).__name__} {value!r}")
        return str(value)

    def identifier(self, column: str) -> str:
        value = self.text(column, required=True).strip()
        if not value:
            raise self.fail(column, "empty id")
        return value

    def year(self) -> int | None:
        value = self.record.get("year")
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _INTEGER.match(value.strip()):
            return int(value)
        raise self.fail("year", f"{value!r} is not a whole number")

    def strings(self, column: str) -> tuple[str, ...]:
        value = self.record.get(column)
        if value is None:
            return ()
        if isinstance(value, str):
            parts = value.split(LIST_SEPARATOR)
        elif isinstance(value, list) and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            parts = [str(v) for v in value]
        else:
            raise self.fail(column, f"expected a list of strings or a '|'-separated string, got {value!r}")
        return tuple(p.strip() for p in parts if p.strip())

    def rating(self) -> float | None:
        value = self.record.get("rating")
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError):
            raise self.fail("rating", f"{value!r} is not a number") from None
        if not math.isfinite(number):
            raise self.fail("rating", f"{value!r} is not a finite number")
        return number

    def timestamp(self) -> int:
        value = self.record.get("timestamp")
        if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
            raise self.fail("timestamp", "empty", "give every row a timestamp or drop the column")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            text = value.strip()
            if _INTEGER.match(text):
                return int(text)
            parsed = parse_iso_timestamp(text)
            if parsed is not None:
                return parsed
        raise self.fail("timestamp", f"{value!r} is neither whole seconds nor an ISO-8601 date/time")


def parse_iso_timestamp(text: str) -> int | None:
    """Unix seconds of an ISO-8601 date or date/time (``2020-05-01``, ``2020-05-01T10:00:00Z``); UTC when naive."""
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return math.floor(moment.timestamp())


def _require_columns(path: Path, line: int, record: dict[str, Any], columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in record]
    if missing:
        where = "the header" if path.suffix == ".csv" else f"line {line}"
        raise DataError(f"{path}: {where} lacks column(s) {', '.join(missing)}; see docs/data-formats.md")


def _read_items(path: Path) -> dict[str, Item]:
    items: dict[str, Item] = {}
    first_line: dict[str, int] = {}
    for line, record in progress(read_records(path), desc=f"reading {path.name}", unit="rows"):
        _require_columns(path, line, record, ("item_id", "title"))
        row = _Row(path, line, record)
        item_id = row.identifier("item_id")
        if item_id in items:
            raise row.fail("item_id", f"duplicate id {item_id!r} (first on line {first_line[item_id]})")
        first_line[item_id] = line
        items[item_id] = Item(
            item_id=item_id,
            title=row.text("title", required=True).strip(),
            year=row.year(),
            genres=row.strings("genres"),
            keywords=row.strings("keywords"),
            tags=row.strings("tags"),
            description=row.text("description").strip(),
        )
    return items


def _read_interactions(path: Path, items_path: Path, items: dict[str, Item]) -> Interactions:
    users: list[str] = []
    item_ids: list[str] = []
    ratings: list[float] = []
    stamps: list[int] = []
    has_time: bool | None = None
    unknown: dict[str, int] = {}
    for line, record in progress(read_records(path), desc=f"reading {path.name}", unit="rows"):
        _require_columns(path, line, record, ("user_id", "item_id"))
        row = _Row(path, line, record)
        if has_time is None:
            has_time = "timestamp" in record
        elif ("timestamp" in record) != has_time:
            raise row.fail("timestamp", "present on some rows only", "give every row a timestamp or none")
        user, item = row.identifier("user_id"), row.identifier("item_id")
        if item not in items:
            unknown.setdefault(item, line)
        rating = row.rating()
        users.append(user)
        item_ids.append(item)
        ratings.append(math.nan if rating is None else rating)
        stamps.append(row.timestamp() if has_time else len(stamps))
    if unknown:
        first, line = next(iter(unknown.items()))
        raise DataError(
            f"{path}: {len(unknown)} item id(s) are not in {items_path.name}, e.g. {first!r} on line {line}; "
            f"add them to the catalogue or remove those rows"
        )
    return Interactions.from_columns(users, item_ids, ratings, stamps)


# ---------------------------------------------------------------------------------------------- writing


def _item_row(item: Item) -> dict[str, Any]:
    return {
        "item_id": item.item_id,
        "title": item.title,
        "year": item.year,
        "genres": list(item.genres),
        "keywords": list(item.keywords),
        "tags": list(item.tags),
        "description": item.description,
    }


def _write_rows(path: Path, columns: tuple[str, ...], rows: Any, fmt: str) -> None:
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        if fmt == "jsonl":
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            return
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(path, row, c) for c in columns])


def _csv_cell(path: Path, row: dict[str, Any], column: str) -> str:
    value = row[column]
    if value is None:
        return ""
    if column in _LIST_COLUMNS:
        bad = [v for v in value if LIST_SEPARATOR in v]
        if bad:
            raise DataError(
                f"cannot write {path.name}: item {row['item_id']!r} has {column} value {bad[0]!r} containing "
                f"'{LIST_SEPARATOR}'; export as jsonl instead"
            )
        return LIST_SEPARATOR.join(value)
    return str(value)
