"""Named data sets and folder detection: the one place that turns ``DATASET`` into a ``Dataset``.

A name (``ml-latest-small``, ``ml-100k``, ``ml-1m``) is looked up, in order, in ``data_dir/<name>``,
the cache (``<cache>/datasets/<name>``), offline copies shipped in PyPI wheels (ml-100k in
``recbole``), and finally downloaded from GroupLens when ``allow_download`` is true.
Any other argument must be a folder in one of the recognised layouts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmrec.data import movielens
from llmrec.data.dataset import Dataset
from llmrec.data.keywords import enrich_with_keywords, find_keywords_file
from llmrec.errors import DataError
from llmrec.paths import resolve_cache_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NamedDataset:
    name: str
    description: str
    loader: Callable[[Path, str], Dataset]
    marker: str  # a file that proves the folder holds this data set


def _load_ml100k(folder: Path, name: str) -> Dataset:
    if (folder / "u.data").is_file():
        return movielens.load_ml100k_classic(folder, name)
    return movielens.load_atomic(folder, name)


NAMED: dict[str, NamedDataset] = {}


def register_dataset(spec: NamedDataset) -> None:
    NAMED[spec.name] = spec


register_dataset(NamedDataset("ml-latest-small", "MovieLens latest-small (610 users, 9.7k movies)",
                              movielens.load_latest, "ratings.csv"))  # fmt: skip
register_dataset(NamedDataset("ml-100k", "MovieLens 100K (943 users, 1.7k movies)", _load_ml100k, "*"))
register_dataset(NamedDataset("ml-1m", "MovieLens 1M (6k users, 3.9k movies)", movielens.load_ml1m, "ratings.dat"))


def _has_marker(folder: Path, marker: str) -> bool:
    if marker == "*":  # ml-100k: classic or atomic files
        return (folder / "u.data").is_file() or any(folder.glob("*.inter"))
    return (folder / marker).is_file()


def _locate_named(spec: NamedDataset, data_dir: Path | None, cache_dir: Path, allow_download: bool) -> Path:
    tried: list[str] = []
    if data_dir is not None:
        candidate = data_dir / spec.name
        if _has_marker(candidate, spec.marker):
            return candidate
        if _has_marker(data_dir, spec.marker) and data_dir.name == spec.name:
            return data_dir
        tried.append(str(candidate))
    cached = cache_dir / "datasets" / spec.name
    if _has_marker(cached, spec.marker):
        return cached
    tried.append(str(cached))
    if spec.name == "ml-100k":
        packaged = movielens.packaged_ml100k()
        if packaged is not None:
            return packaged
        tried.append("the recbole==1.2.1 wheel (pip install --no-deps recbole==1.2.1)")
    if allow_download:
        from llmrec.data.download import GROUPLENS, fetch_zip_dataset

        source = GROUPLENS[spec.name]
        return fetch_zip_dataset(source.url, source.sha256, cache_dir, spec.name, f"MovieLens {spec.name}")
    raise DataError(
        f"data set {spec.name} not found (looked in {'; '.join(tried)}); pass --data-dir with the folder that holds "
        f"{spec.name}/, or allow the download"
    )


def detect_loader(folder: Path) -> Callable[[Path, str], Dataset]:
    """The loader for a folder in one of the recognised layouts."""
    if (folder / "movies.csv").is_file() and (folder / "ratings.csv").is_file():
        return movielens.load_latest
    if (folder / "u.data").is_file() or any(folder.glob("*.inter")):
        return _load_ml100k
    if (folder / "ratings.dat").is_file():
        return movielens.load_ml1m
    from llmrec.data import amazon, generic, netflix  # imported here: only folders of other layouts need them

    if generic.is_generic_folder(folder):
        return generic.load_generic
    if netflix.is_netflix_folder(folder):
        return netflix.load_netflix
    if amazon.is_amazon_folder(folder):
        return amazon.load_amazon_folder
    raise DataError(
        f"folder {folder} is in no known layout; see docs/data-formats.md (items.csv + interactions.csv is simplest)"
    )


def load_dataset(
    dataset: str,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    allow_download: bool = False,
    keywords: bool = True,
) -> Dataset:
    """Load a named data set or a folder; MovieLens items gain keywords when the keyword file is found."""
    data_path = Path(data_dir).expanduser() if data_dir is not None else None
    if data_path is not None and not data_path.is_dir():
        raise DataError(f"--data-dir {data_path} is not a folder; pass the folder that holds the data sets")
    if dataset in NAMED:
        spec = NAMED[dataset]
        folder = _locate_named(spec, data_path, resolve_cache_dir(cache_dir), allow_download)
        log.info("loading %s from %s", dataset, folder)
        loaded = spec.loader(folder, dataset)
    else:
        folder = Path(dataset).expanduser()
        if not folder.is_dir():
            known = ", ".join(sorted(NAMED))
            raise DataError(f"unknown data set {dataset!r}: not a folder; use one of {known} or a data folder")
        loaded = detect_loader(folder)(folder, folder.name)
    keyword_file = find_keywords_file(data_path)
    if keywords and keyword_file is not None and dataset in ("ml-latest-small", "ml-1m"):
        loaded = enrich_with_keywords(loaded, keyword_file)
    return loaded
