"""The heavy shared resources a recommender builds once: the vector store and the collaborative model.

- ``index_dataset``: build or refresh a data set's vector store (``llmrec index``).
- ``ready_store``: the store, built (or completed) on first use when it does not hold the whole catalogue.
- ``fit_cf_scorer``: a collaborative model fitted on every user's full sequence, trained once per data set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmrec.embedding import DEFAULT_EMBEDDER, Embedder, get_embedder
from llmrec.errors import ConfigError
from llmrec.index.base import VectorIndex
from llmrec.indexing import DEFAULT_BATCH, IndexReport, build_index, open_store
from llmrec.retrieval.collaborative import CollaborativeScorer

if TYPE_CHECKING:
    from llmrec.data.dataset import Dataset

log = logging.getLogger(__name__)

ScorerFactory = Callable[[str, Any], CollaborativeScorer]  # (model name, SequenceData) -> a fitted scorer


def fit_cf_scorer(name: str, seq: Any, cache_dir: str | Path | None = None) -> CollaborativeScorer:
    """The default hook: ``llmrec.baselines.get_scorer(name)`` fitted on every user's full sequence.

    Models that train with checkpoints (SASRec, NCF, LightGCN, CFGAN) keep them in
    ``<cache>/cf/<data set>-<model>-<data hash>``, so they train once per data set, not per call.
    """
    import hashlib

    import numpy as np

    try:
        from llmrec.baselines import TrainData, get_checkpointed_scorer
    except ImportError as exc:  # pragma: no cover - baselines ship with the package
        raise ConfigError(f"collaborative model {name!r} needs llmrec.baselines ({exc}); use --retriever text") from exc
    from llmrec.paths import resolve_cache_dir

    train = TrainData(n_users=seq.n_users, n_items=seq.n_items, histories=seq.sequences, ratings=seq.ratings,
                      timestamps=seq.timestamps)  # fmt: skip
    digest = hashlib.sha256(np.concatenate(seq.sequences).astype(np.int64).tobytes()).hexdigest()[:12]
    scorer = get_checkpointed_scorer(name, resolve_cache_dir(cache_dir) / "cf" / f"{seq.name}-{name}-{digest}")
    log.info("fitting %s on %d users x %d items", name, seq.n_users, seq.n_items)
    return scorer.fit(train)


def _load(dataset: str | Dataset, data_dir: str | Path | None, cache_dir: str | Path | None,
          allow_download: bool) -> Dataset:  # fmt: skip
    if not isinstance(dataset, (str, Path)):
        return dataset
    from llmrec.data import load_dataset

    return load_dataset(dataset, data_dir=data_dir, cache_dir=cache_dir, allow_download=allow_download)


def _embedder(embedder: str | Embedder, cache_dir: str | Path | None) -> Embedder:
    return get_embedder(embedder, cache_dir=cache_dir) if isinstance(embedder, str) else embedder


def index_dataset(
    dataset: str | Dataset,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    store: str | Path | None = None,
    chroma_url: str | None = None,
    embedder: str | Embedder = DEFAULT_EMBEDDER,
    rebuild: bool = False,
    batch_size: int = DEFAULT_BATCH,
    allow_download: bool = False,
    timeout: float = 10.0,
) -> IndexReport:
    """``llmrec index``: embed new and changed items into the store, drop removed ones."""
    ds = _load(dataset, data_dir, cache_dir, allow_download)
    emb = _embedder(embedder, cache_dir)
    index = open_store(ds.name, emb, cache_dir=cache_dir, store=store, chroma_url=chroma_url, rebuild=rebuild,
                       timeout=timeout)  # fmt: skip
    report = build_index(ds, emb, index, batch_size=batch_size)
    log.info("%s: %d embedded, %d unchanged, %d deleted, %d in the store (%.1f s)", report.location,
             report.embedded, report.unchanged, report.deleted, report.total, report.seconds)  # fmt: skip
    return report


def ready_store(ds: Dataset, emb: Embedder, cache_dir: str | Path | None = None, store: str | Path | None = None,
                chroma_url: str | None = None, timeout: float = 10.0) -> tuple[VectorIndex, str | None]:  # fmt: skip
    """The data set's store, built (or completed) first when it does not hold the whole catalogue."""
    index = open_store(ds.name, emb, cache_dir=cache_dir, store=store, chroma_url=chroma_url, timeout=timeout)
    if index.count() == len(ds.items):
        return index, None
    log.warning("building the vector store for %s at %s (first use; %d items)", ds.name, index.location, len(ds.items))
    report = build_index(ds, emb, index)
    return index, f"built the vector store at {report.location}: {report.embedded} items embedded"
