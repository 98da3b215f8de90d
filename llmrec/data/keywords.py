"""Keyword enrichment for MovieLens from ``ml-25m-keywords/movies_w_keywords.csv`` (joined on movieId)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from llmrec.data.dataset import Dataset
from llmrec.errors import DataError

KEYWORDS_FILE = Path("ml-25m-keywords") / "movies_w_keywords.csv"


def find_keywords_file(data_dir: str | Path | None) -> Path | None:
    if data_dir is None:
        return None
    path = Path(data_dir) / KEYWORDS_FILE
    return path if path.is_file() else None


def enrich_with_keywords(dataset: Dataset, path: str | Path) -> Dataset:
    """A copy of ``dataset`` whose items carry the keyword lists of ``path`` (matching movieIds)."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=["movieId", "keywords"])
    except (ValueError, pd.errors.ParserError) as exc:
        first = str(exc).splitlines()[0]
        raise DataError(f"malformed keyword file {path}: {first}; expected columns movieId,keywords") from None
    keywords = {
        movie: tuple(k.strip() for k in raw.split("|") if k.strip())
        for movie, raw in zip(frame["movieId"], frame["keywords"])
    }
    items = {
        iid: dataclasses.replace(item, keywords=keywords[iid]) if keywords.get(iid) else item
        for iid, item in dataset.items.items()
    }
    return dataclasses.replace(dataset, items=items)
