"""The recommendation service the CLI (and the chat app) call: one function per command.

- ``index_dataset``: build or refresh a data set's vector store (``llmrec index``).
- ``recommend``: candidates for a user id, liked titles and/or a stated preference
  (``llmrec recommend``), from the ``text``, ``cf`` or ``hybrid`` retriever, optionally diversified.
  The default store is built on first use. Heavy libraries load only when a command needs them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmrec.embedding import DEFAULT_EMBEDDER, Embedder, get_embedder
from llmrec.errors import ConfigError, DataError
from llmrec.index.base import VectorIndex
from llmrec.indexing import DEFAULT_BATCH, IndexReport, build_index, open_store
from llmrec.profile import build_profile
from llmrec.retrieval import Retriever
from llmrec.retrieval.collaborative import CollaborativeRetriever, CollaborativeScorer
from llmrec.types import Evidence, UserProfile

if TYPE_CHECKING:
    from llmrec.data.dataset import Dataset

log = logging.getLogger(__name__)

RETRIEVERS = ("text", "cf", "hybrid")
HYBRID_TEXT_WEIGHT = 0.25  # RRF weight of text vs cf (1.0); best on the validation item of ml-latest-small
DEFAULT_CF_MODEL = "ease"
ScorerFactory = Callable[[str, Any], CollaborativeScorer]  # (model name, SequenceData) -> a fitted scorer


@dataclass(frozen=True)
class RecommendedItem:
    item_id: str
    title: str
    year: int | None
    genres: tuple[str, ...]
    score: float
    sources: tuple[str, ...]
    evidence: Evidence


@dataclass(frozen=True)
class RecommendResult:
    items: list[RecommendedItem]
    notes: tuple[str, ...] = ()
    profile: UserProfile = field(default_factory=UserProfile)
    retriever: str = ""

    def as_dicts(self) -> list[dict[str, Any]]:
        """JSON-ready rows: item_id, title, year, genres, score, sources, evidence."""
        return [asdict(item) for item in self.items]


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


def build_retriever(kind: str, profile: UserProfile, ds: Dataset, index: VectorIndex | None, emb: Embedder | None,
                    cf_scorer: Callable[[], tuple[CollaborativeScorer, Any]] | None, cf_model: str = DEFAULT_CF_MODEL,
                    diversity: float = 0.0) -> tuple[Retriever | None, list[str]]:  # fmt: skip
    """The retriever for ``kind`` given what the profile allows; notes say what was left out and why."""
    from llmrec.retrieval.diversify import DiversifiedRetriever, MMRDiversifier
    from llmrec.retrieval.fusion import HybridRetriever
    from llmrec.retrieval.text import TextRetriever

    notes: list[str] = []
    parts: list[Retriever] = []
    if kind in ("text", "hybrid") and index is not None and emb is not None:
        parts.append(TextRetriever(index, emb, items=ds.items))
    if kind in ("cf", "hybrid"):
        if profile.history and cf_scorer is not None:
            try:
                scorer, seq = cf_scorer()
                parts.append(CollaborativeRetriever(scorer, seq, label=cf_model, items=ds.items))
            except DataError as exc:
                if kind == "cf":
                    raise
                notes.append(f"collaborative retrieval skipped: {exc}")
        else:
            notes.append("collaborative retrieval skipped: it needs a history (--user with ratings, or --like titles)")
    if not parts:
        return None, notes
    retriever: Retriever = parts[0] if len(parts) == 1 else HybridRetriever(parts, weights=(HYBRID_TEXT_WEIGHT, 1.0))
    if diversity > 0 and index is not None:
        retriever = DiversifiedRetriever(retriever, MMRDiversifier(index, lam=1.0 - diversity))
    return retriever, notes


def recommend(
    dataset: str | Dataset,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    user: str | None = None,
    likes: Sequence[str] = (),
    query: str | None = None,
    k: int = 10,
    retriever: str = "hybrid",
    store: str | Path | None = None,
    chroma_url: str | None = None,
    embedder: str | Embedder = DEFAULT_EMBEDDER,
    diversity: float = 0.0,
    cf_model: str = DEFAULT_CF_MODEL,
    scorer_factory: ScorerFactory | None = None,
    cf_min_count: int = 5,
    allow_download: bool = False,
    timeout: float = 10.0,
) -> RecommendResult:
    """``llmrec recommend``: top-``k`` unseen catalogue items for a user, liked titles and/or a query.

    The collaborative model (``cf_model``, fitted on the data set after the ``cf_min_count``-core
    filter) comes from ``scorer_factory(name, sequence_data)`` when given, else from
    ``llmrec.baselines``. ``diversity`` in [0, 1] re-ranks a deeper pool with MMR (0 = off).
    """
    if k < 1:
        raise ConfigError(f"-k must be at least 1, got {k}")
    if retriever not in RETRIEVERS:
        raise ConfigError(f"unknown retriever {retriever!r}; choose one of {', '.join(RETRIEVERS)}")
    if not 0.0 <= diversity <= 1.0:
        raise ConfigError(f"diversity must be in [0, 1] (0 = none), got {diversity}")
    if user is None and not likes and not (query and query.strip()):
        raise ConfigError("say who the recommendations are for: --user ID, --like TITLE or --query TEXT")
    ds = _load(dataset, data_dir, cache_dir, allow_download)
    profile = build_profile(ds, user=user, likes=likes, query=query)
    notes = list(profile.notes)
    if profile.is_newcomer and not profile.stated_preferences:  # e.g. an unknown user id: nothing to go on
        notes.append("no recommendations: nothing in the profile to go on (give --like TITLE or --query TEXT)")
        return RecommendResult([], tuple(notes), profile, "")
    index = emb = None
    if retriever in ("text", "hybrid") or diversity > 0:
        emb = _embedder(embedder, cache_dir)
        index, built = ready_store(ds, emb, cache_dir=cache_dir, store=store, chroma_url=chroma_url, timeout=timeout)
        notes += [built] if built else []

    def cf_scorer() -> tuple[CollaborativeScorer, Any]:
        from llmrec.data import preprocess

        seq = preprocess(ds, min_count=cf_min_count)
        return (scorer_factory or fit_cf_scorer)(cf_model, seq), seq

    chosen, more = build_retriever(retriever, profile, ds, index, emb, cf_scorer, cf_model, diversity)
    notes += more
    candidates = chosen.retrieve(profile, k) if chosen is not None else []
    if not candidates:
        notes.append("no recommendations: no unseen item matched")
    rows = []
    for cand in candidates:
        item = ds.items[cand.item_id]
        rows.append(RecommendedItem(cand.item_id, item.display_title, item.year, item.genres, cand.score,
                                    cand.sources, cand.evidence))  # fmt: skip
    return RecommendResult(rows, tuple(notes), profile, chosen.name if chosen is not None else "")
