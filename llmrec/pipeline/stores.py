"""The heavy shared resources a recommender builds once: the vector store and the collaborative model.

- ``index_dataset``: build or refresh a data set's vector store (``llmrec index``).
- ``ready_store``: the store, built (or completed) on first use when it does not hold the whole catalogue.
- ``wait_for_store``: return once no other process is writing a data set's store (the app's "waiting" state).
- ``fit_cf_scorer``: a collaborative model fitted on every user's full sequence, trained once per data set.

Building copies the vectors the package ships for the default data set (``llmrec.index.precomputed``,
verified against the embedder's model files) and embeds only the rest. When another process holds the
store's writer lock, opening and building wait for it (logged every 30 s; ``on_wait`` gets a ``StoreBusy``
about twice a second) and then continue with the store that process left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmrec.embedding import DEFAULT_EMBEDDER, Embedder, get_embedder
from llmrec.errors import ConfigError
from llmrec.index.base import VectorIndex
from llmrec.index.lock import OnWait, StoreBusy
from llmrec.index.precomputed import ShippedVectors, VectorSource
from llmrec.indexing import DEFAULT_BATCH, IndexReport, build_index, open_store, store_folder, template_ref
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


def _vectors(emb: Embedder, precomputed: VectorSource | None, shipped: bool) -> VectorSource | None:
    if precomputed is not None:
        return precomputed
    return ShippedVectors(emb, template=template_ref()) if shipped else None


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
    *,
    shipped: bool = True,
    precomputed: VectorSource | None = None,
    wait: float | None = None,
    on_wait: OnWait | None = None,
) -> IndexReport:
    """``llmrec index``: embed new and changed items into the store, drop removed ones. ``shipped``: copy the
    package's precomputed vectors where they fit (``precomputed`` replaces them); ``wait``/``on_wait``: how long
    to wait for another writer (None: as long as it takes) and whom to tell."""
    ds = _load(dataset, data_dir, cache_dir, allow_download)
    emb = _embedder(embedder, cache_dir)
    index = open_store(ds.name, emb, cache_dir=cache_dir, store=store, chroma_url=chroma_url, rebuild=rebuild,
                       timeout=timeout, wait=wait, on_wait=on_wait)  # fmt: skip
    report = build_index(ds, emb, index, batch_size=batch_size, precomputed=_vectors(emb, precomputed, shipped),
                         wait=wait, on_wait=on_wait)  # fmt: skip
    log.info("%s: %d embedded (%d from precomputed vectors), %d unchanged, %d deleted, %d in the store (%.1f s)",
             report.location, report.embedded, report.precomputed, report.unchanged, report.deleted, report.total,
             report.seconds)  # fmt: skip
    return report


def ready_store(ds: Dataset, emb: Embedder, cache_dir: str | Path | None = None, store: str | Path | None = None,
                chroma_url: str | None = None, timeout: float = 10.0, *, shipped: bool = True,
                precomputed: VectorSource | None = None, wait: float | None = None, on_wait: OnWait | None = None,
                on_progress: Callable[[int, int], None] | None = None,
                ) -> tuple[VectorIndex, str | None]:  # fmt: skip
    """The data set's store, built (or completed) first when it does not hold the whole catalogue.

    A store another process is writing is waited for (``wait`` s at most, None: as long as it takes, then
    ``StoreBusyError``; ``on_wait`` gets a ``StoreBusy`` about twice a second) and used as that process left it;
    ``on_progress(done, total)`` follows a build made here. Returns the store and a note when it was built."""
    index = open_store(ds.name, emb, cache_dir=cache_dir, store=store, chroma_url=chroma_url, timeout=timeout,
                       wait=wait, on_wait=on_wait)  # fmt: skip
    if index.count() == len(ds.items):
        return index, None
    log.warning("building the vector store for %s at %s (first use; %d items)", ds.name, index.location, len(ds.items))
    report = build_index(ds, emb, index, precomputed=_vectors(emb, precomputed, shipped), wait=wait, on_wait=on_wait,
                         on_progress=on_progress)  # fmt: skip
    if report.embedded == 0:
        return index, None  # another process completed it while this one waited
    how = f"{report.embedded - report.precomputed} embedded, {report.precomputed} from the shipped vectors"
    return index, f"built the vector store at {report.location} in {report.seconds:.0f} s: {how}"


def wait_for_store(dataset: str, embedder: str = DEFAULT_EMBEDDER, cache_dir: str | Path | None = None,
                   store: str | Path | None = None, chroma_url: str | None = None, *, on_wait: OnWait | None = None,
                   timeout: float | None = None) -> StoreBusy | None:  # fmt: skip
    """Return once no other process is writing ``dataset``'s embedded store (the folder ``ready_store`` opens).

    ``on_wait`` gets a ``StoreBusy`` (store, writer pid, since, items done of total, seconds waited) about twice a
    second while it waits; after ``timeout`` seconds (None: no limit) ``StoreBusyError`` is raised. Returns the
    last ``StoreBusy`` seen, or None at once when nobody writes, the store does not exist yet, or it is on a
    Chroma server (which serialises writes itself)."""
    from llmrec.index.chroma import LOCK_NAME
    from llmrec.index.lock import wait_for_writer

    if chroma_url is not None:
        return None
    folder = store_folder(Path(dataset).name, embedder, cache_dir, store).expanduser().resolve()
    return wait_for_writer(folder / LOCK_NAME, str(folder), timeout, on_wait)
