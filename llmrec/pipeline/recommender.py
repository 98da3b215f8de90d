"""The long-lived recommender: retriever -> ranker -> explainer, built once from a ``RecommenderConfig``.

The CLI, the chat engine, the app, the benchmarks and ``evaluate`` all go through ``Recommender``; its parts
come from ``llmrec.pipeline.parts`` (the one reader of kind strings). Every heavy part (data set, vector store,
collaborative model, language model) is built on first use and kept, so a chat turn costs one retrieval, one
ranking pass and the explanations. ``variant`` makes a recommender with other settings that shares them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from llmrec.config import RecommenderConfig
from llmrec.errors import ConfigError, DataError
from llmrec.pipeline import parts
from llmrec.types import Candidate, Item, Recommendation, UserProfile

log = logging.getLogger(__name__)

ItemFilter = Callable[[Item], bool]


@dataclass(frozen=True)
class Recommendations:
    """The one result of a recommendation: the items with their evidence, and notes on how they were made."""

    items: list[Recommendation]
    notes: tuple[str, ...] = ()
    ranker: str = ""
    retriever: str = ""  # the retriever that ran (e.g. "text" when the collaborative model had nothing to go on)


class Recommender:
    """One data set, one store, one collaborative model and (when asked for) one language model."""

    def __init__(self, config: RecommenderConfig | None = None, *, dataset: Any = None, embedder: Any = None,
                 index: Any = None, llm: Any = None, scorer_factory: Any = None,
                 llm_pool: dict[Any, Any] | None = None) -> None:  # fmt: skip
        """Parts given here are used as they are (tests inject fakes); the rest are built from ``config`` on first
        use. ``llm_pool`` (language models by their config) is shared by a recommender and its variants."""
        self.config = config or RecommenderConfig()
        self._dataset = dataset
        self._embedder = embedder
        self._index = index
        self._llm = llm
        self._scorer_factory = scorer_factory
        self._llm_pool = {} if llm_pool is None else llm_pool
        self.notes: list[str] = []
        self.lock = threading.RLock()  # one model call at a time: sessions share the models

    # Shared resources, built on first use ------------------------------------------------------------
    @cached_property
    def dataset(self) -> Any:
        if self._dataset is not None:
            return self._dataset
        from llmrec.data import load_dataset

        data = self.config.data
        return load_dataset(data.dataset, data_dir=data.data_dir, cache_dir=self.config.cache_dir,
                            allow_download=data.allow_download)  # fmt: skip

    @property
    def items(self) -> Any:
        return self.dataset.items

    @cached_property
    def embedder(self) -> Any:
        if self._embedder is not None:
            return self._embedder
        from llmrec.embedding import get_embedder

        return get_embedder(self.config.embedder.name, cache_dir=self.config.cache_dir)

    @cached_property
    def index(self) -> Any:
        if self._index is not None:
            return self._index
        from llmrec.pipeline.stores import ready_store

        cfg = self.config.index
        index, built = ready_store(self.dataset, self.embedder, cache_dir=self.config.cache_dir, store=cfg.store,
                                   chroma_url=cfg.chroma_url, timeout=cfg.timeout_s)  # fmt: skip
        if built:
            self.notes.append(built)
        return index

    @cached_property
    def collaborative(self) -> tuple[Any, Any]:
        """(fitted scorer, SequenceData) for the configured collaborative model, over every user's history."""
        from llmrec.data import preprocess
        from llmrec.pipeline.stores import fit_cf_scorer

        seq = preprocess(self.dataset, min_count=self.config.data.min_count)
        if self._scorer_factory is not None:
            return self._scorer_factory(self.config.retrieval.cf_model, seq), seq
        return fit_cf_scorer(self.config.retrieval.cf_model, seq, cache_dir=self.config.cache_dir), seq

    @cached_property
    def quality_prior(self) -> Any:
        """The quality/familiarity prior from the data set's ratings (``retrieval.quality_prior``)."""
        from llmrec.retrieval.prior import QualityPrior

        return QualityPrior.from_interactions(self.dataset.interactions)

    @cached_property
    def dialogue_scorer(self) -> Any:
        """The dialogue model of ``retrieval.dialogue_file`` on this catalogue (DataError when there is none)."""
        return parts.build_dialogue_scorer(self.config, self)

    @cached_property
    def llm(self) -> Any:
        if self._llm is not None:
            return self._llm
        with self.lock:  # variants share the pool: one model per language-model config
            if self.config.llm not in self._llm_pool:
                self._llm_pool[self.config.llm] = parts.build_llm(self.config)
            return self._llm_pool[self.config.llm]

    # Parts --------------------------------------------------------------------------------------------
    @cached_property
    def ranker(self) -> Any:
        return parts.build_ranker(self.config, self)

    @cached_property
    def explainer(self) -> Any:
        return parts.build_explainer(self.config, self)

    @cached_property
    def understander(self) -> Any:
        """What reads chat messages (``understanding.kind``); the language model loads on the first message."""
        return parts.build_understander(self.config, self)

    @cached_property
    def template_explainer(self) -> Any:
        """Explanations from the evidence alone: instant, used when the caller wants no model call."""
        return parts.build_evidence_explainer(self.config, self)

    def variant(self, **sections: dict) -> Recommender:
        """A recommender with some settings changed (``ranker={"kind": "passthrough"}``, ...) that shares this
        one's catalogue, store, collaborative model and language models (a model loads once per its settings)."""
        config = self.config.updated(**sections)
        text = parts.uses_text(config)
        llm = self._llm if config.llm == self.config.llm else None
        other = Recommender(config, dataset=self.dataset, embedder=self.embedder if text else None,
                            index=self.index if text else None, llm=llm,
                            scorer_factory=lambda _name, _seq: self.collaborative[0],
                            llm_pool=self._llm_pool)  # fmt: skip
        shared = ["quality_prior"]  # the same data set: the same prior and (from the same file) dialogue model
        if parts.dialogue_file(config) == parts.dialogue_file(self.config):
            shared.append("dialogue_scorer")
        other.__dict__.update({name: self.__dict__[name] for name in shared if name in self.__dict__})
        return other

    # Profiles -----------------------------------------------------------------------------------------
    def profile(self, user: str | None = None, likes: Sequence[str] = (), query: str | None = None) -> UserProfile:
        from llmrec.profile import build_profile

        return build_profile(self.dataset, user=user, likes=likes, query=query)

    # Recommending -------------------------------------------------------------------------------------
    def retriever(self, profile: UserProfile) -> tuple[Any, list[str]]:
        return parts.build_retriever(self.config, self, profile)

    def candidates(self, profile: UserProfile, n: int, keep: ItemFilter | None = None) -> tuple[list[Candidate], list]:
        """``n`` retrieved candidates passing ``keep`` and the profile's constraints (a deeper pool is searched
        when filtering), and notes on what retrieval left out."""
        found, notes, _ = self._retrieve(profile, n, keep)
        return found, notes

    def _retrieve(self, profile: UserProfile, n: int, keep: ItemFilter | None) -> tuple[list[Candidate], list, str]:
        retriever, notes = self.retriever(profile)
        if retriever is None:
            return [], notes, ""
        test = _combine(keep, profile.constraints.allows if profile.constraints else None)
        found = retriever.retrieve(profile, n if test is None else n * 10)
        if test is not None:
            found = [c for c in found if test(self.items[c.item_id])]
        return found[:n], notes, retriever.name

    def recommend(self, profile: UserProfile, k: int | None = None, keep: ItemFilter | None = None,
                  explain: bool = True) -> Recommendations:  # fmt: skip
        """Top-``k`` recommendations with evidence; written explanations when ``explain`` (else templates)."""
        with self.lock:
            return self._recommend(profile, self.config.k if k is None else k, keep, explain)

    def _recommend(self, profile: UserProfile, k: int, keep: ItemFilter | None, explain: bool) -> Recommendations:
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        notes = list(profile.notes)
        if profile.is_newcomer and not profile.stated_preferences:
            notes.append("nothing in the profile to go on yet: name a few titles you like or say what you want")
            return Recommendations([], tuple(notes))
        pool, more, retriever = self._retrieve(profile, max(k, self.config.retrieval.candidates), keep)
        notes += more + self.notes
        ranked = self.ranker.rank(profile, pool, k)
        if getattr(self.ranker, "last_note", ""):
            notes.append(self.ranker.last_note)
        recs = (self.explainer if explain else self.template_explainer).explain(profile, ranked)
        if not recs:
            notes.append("no unseen item matched")
        return Recommendations(recs, tuple(dict.fromkeys(notes)), self.ranker.name, retriever)

    def why(self, profile: UserProfile, item_id: str, depth: int = 200) -> tuple[Recommendation, str]:
        """The explanation and evidence for ``item_id`` for this profile, and where retrieval placed it.

        Only an item retrieval would offer gets a reason for recommending it; for any other (not among the top
        ``depth`` candidates, or already seen) the sentence says it would not be recommended, and why, beside the
        evidence that exists (so the two halves of the answer never disagree)."""
        if item_id not in self.items:
            raise DataError(f"unknown item id {item_id!r} in {self.dataset.name}; use an id from `llmrec recommend`")
        with self.lock:
            found, _ = self.candidates(profile, depth)
            rank = next((r for r, c in enumerate(found, 1) if c.item_id == item_id), None)
            where = f"retrieval rank {rank} of {depth}" if rank else f"not among the top {depth} candidates"
            if item_id in profile.seen:
                where = "already in the user's history, so it would not be recommended"
            elif rank:
                return self.explainer.explain(profile, [found[rank - 1]])[0], where
            shown = self.template_explainer.explain(profile, [Candidate(item_id, 0.0, ())])[0]
            if item_id in profile.seen:
                reason = "it is already in the user's history"
            elif profile.is_newcomer and not profile.stated_preferences:
                reason = "there is nothing in this profile to go on yet (no history, likes or stated wishes)"
            else:
                reason = f"it is {where}"
            return replace(shown, explanation=f"It would not be recommended for this profile now: {reason}.",
                           explanation_source="not-recommended"), where  # fmt: skip


def _combine(*tests: ItemFilter | None) -> ItemFilter | None:
    given = [t for t in tests if t is not None]
    if not given:
        return None
    if len(given) == 1:
        return given[0]
    return lambda item: all(t(item) for t in given)

