"""The long-lived recommender: retriever -> ranker -> explainer, built once from a ``RecommenderConfig``.

The CLI, the chat engine and the app all go through ``Recommender``. Every heavy part (data set,
vector store, collaborative model, language model) is built on first use and kept, so a chat turn
costs one retrieval, one ranking pass and the explanations.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from llmrec.config import RecommenderConfig
from llmrec.errors import ConfigError, DataError
from llmrec.explanation import LLMExplainer, TemplateExplainer
from llmrec.types import Candidate, Item, Recommendation, UserProfile

log = logging.getLogger(__name__)

ADAPTERS_DIR = Path(__file__).resolve().parent.parent / "finetune" / "adapters"
ItemFilter = Callable[[Item], bool]


def default_adapter(model: str, task: str = "rank") -> Path | None:
    """The LoRA adapter shipped in the repository for ``model`` and ``task`` (rank or explain), if any."""
    folder = ADAPTERS_DIR / model
    folder = folder / "explain" if task == "explain" else folder
    return folder if (folder / "adapter_model.safetensors").is_file() else None


@dataclass(frozen=True)
class Recommendations:
    items: list[Recommendation]
    notes: tuple[str, ...] = ()
    ranker: str = "passthrough"
    retriever: str = ""


class Recommender:
    """One data set, one store, one collaborative model and (when asked for) one language model."""

    def __init__(self, config: RecommenderConfig | None = None, *, dataset: Any = None, embedder: Any = None,
                 index: Any = None, llm: Any = None, scorer_factory: Any = None) -> None:  # fmt: skip
        self.config = config or RecommenderConfig()
        self._dataset = dataset
        self._embedder = embedder
        self._index = index
        self._llm = llm
        self._scorer_factory = scorer_factory
        self.notes: list[str] = []
        self.lock = threading.RLock()  # one model call at a time: sessions share the models

    # Parts, built on first use ----------------------------------------------------------------
    @cached_property
    def dataset(self) -> Any:
        if self._dataset is not None:
            return self._dataset
        from llmrec.data import load_dataset

        data = self.config.data
        return load_dataset(data.dataset, data_dir=data.data_dir, cache_dir=self.config.cache_dir)

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
        from llmrec.recommend import ready_store

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
        from llmrec.recommend import fit_cf_scorer

        seq = preprocess(self.dataset, min_count=self.config.data.min_count)
        if self._scorer_factory is not None:
            return self._scorer_factory(self.config.retrieval.cf_model, seq), seq
        return fit_cf_scorer(self.config.retrieval.cf_model, seq, cache_dir=self.config.cache_dir), seq

    @cached_property
    def llm(self) -> Any:
        if self._llm is not None:
            return self._llm
        cfg = self.config.llm
        if cfg.url:
            from llmrec.llm.openai_http import OpenAICompatLLM

            if cfg.adapter is not None or cfg.explain_adapter is not None:
                raise ConfigError(
                    f"--adapter {cfg.adapter or cfg.explain_adapter} cannot be loaded into an LLM server (--llm-url); "
                    "adapters on a server are chosen by --model, the name the server gives the adapter"
                )
            llm = OpenAICompatLLM(cfg.url, cfg.model)
            log.info("language model %s served at %s", llm.model, llm.url)
            return llm
        from llmrec.llm import prepare_model
        from llmrec.llm.local import TransformersLLM

        folder = prepare_model(cfg.model, cache_dir=self.config.cache_dir, allow_network=cfg.allow_network)
        adapter = cfg.adapter or (default_adapter(cfg.model) if cfg.use_default_adapter else None)
        explain = cfg.explain_adapter or (default_adapter(cfg.model, "explain") if cfg.use_default_adapter else None)
        log.info("language model %s; ranking %s; explaining %s", cfg.model, adapter or "zero-shot",
                 explain or "zero-shot")  # fmt: skip
        return TransformersLLM(folder, name=cfg.model, adapter=adapter, dtype=cfg.dtype, threads=cfg.threads,
                               explain_adapter=explain)  # fmt: skip

    @cached_property
    def ranker(self) -> Any:
        from llmrec.ranking import LLMRanker, PassthroughRanker, validated_blend

        cfg = self.config.ranker
        if cfg.kind == "llm":
            adapter = getattr(self.llm, "adapter", None)
            blend = cfg.blend
            if blend is None:  # validated in the shipped card (its zero-shot sweep when no adapter is loaded)
                shipped = adapter or default_adapter(self.config.llm.model)
                blend = validated_blend(shipped, zero_shot=adapter is None)
            return LLMRanker(self.llm, self.items, max_history=cfg.max_history, blend=blend)
        return PassthroughRanker()

    @cached_property
    def explainer(self) -> Any:
        if self.config.explainer.kind == "llm":
            return LLMExplainer(self.llm, self.items, max_new_tokens=self.config.explainer.max_new_tokens)
        return TemplateExplainer(self.items)

    # Profiles ---------------------------------------------------------------------------------
    def profile(self, user: str | None = None, likes: Sequence[str] = (), query: str | None = None) -> UserProfile:
        from llmrec.profile import build_profile

        return build_profile(self.dataset, user=user, likes=likes, query=query)

    # Recommending -----------------------------------------------------------------------------
    def retriever(self, profile: UserProfile) -> tuple[Any, list[str]]:
        from llmrec.recommend import build_retriever

        cfg = self.config.retrieval
        needs_text = cfg.retriever in ("text", "hybrid") or cfg.diversity > 0
        index = self.index if needs_text else None
        embedder = self.embedder if needs_text else None
        return build_retriever(cfg.retriever, profile, self.dataset, index, embedder, lambda: self.collaborative,
                               cfg.cf_model, cfg.diversity)  # fmt: skip

    def candidates(self, profile: UserProfile, n: int, keep: ItemFilter | None = None) -> tuple[list[Candidate], list]:
        """``n`` retrieved candidates passing ``keep`` (a deeper pool is searched when filtering)."""
        retriever, notes = self.retriever(profile)
        if retriever is None:
            return [], notes
        depth = n if keep is None else n * 10
        found = retriever.retrieve(profile, depth)
        if keep is not None:
            found = [c for c in found if keep(self.items[c.item_id])]
        return found[:n], notes

    def recommend(self, profile: UserProfile, k: int | None = None, keep: ItemFilter | None = None,
                  explain: bool = True) -> Recommendations:  # fmt: skip
        """Top-``k`` recommendations with evidence, and explanations when ``explain``."""
        with self.lock:
            return self._recommend(profile, k or self.config.k, keep, explain)

    def _recommend(self, profile: UserProfile, k: int, keep: ItemFilter | None, explain: bool) -> Recommendations:
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        notes = list(profile.notes)
        if profile.is_newcomer and not profile.stated_preferences:
            notes.append("nothing in the profile to go on yet: name a few titles you like or say what you want")
            return Recommendations([], tuple(notes))
        pool, more = self.candidates(profile, max(k, self.config.retrieval.candidates), keep)
        notes += more + self.notes
        ranked = self.ranker.rank(profile, pool, k)
        if getattr(self.ranker, "last_note", ""):
            notes.append(self.ranker.last_note)
        explainer = self.explainer if explain else TemplateExplainer(self.items)
        recs = explainer.explain(profile, ranked)
        if not recs:
            notes.append("no unseen item matched")
        return Recommendations(recs, tuple(dict.fromkeys(notes)), self.ranker.name, self.config.retrieval.retriever)

    def why(self, profile: UserProfile, item_id: str, depth: int = 200) -> tuple[Recommendation, str]:
        """The explanation and evidence for ``item_id`` for this profile, and where retrieval placed it."""
        if item_id not in self.items:
            raise DataError(f"unknown item id {item_id!r} in {self.dataset.name}; use an id from `llmrec recommend`")
        with self.lock:
            return self._why(profile, item_id, depth)

    def _why(self, profile: UserProfile, item_id: str, depth: int) -> tuple[Recommendation, str]:
        found, _ = self.candidates(profile, depth)
        rank = next((r for r, c in enumerate(found, 1) if c.item_id == item_id), None)
        candidate = found[rank - 1] if rank else Candidate(item_id, 0.0, ())
        where = f"retrieval rank {rank} of {depth}" if rank else f"not among the top {depth} candidates"
        if item_id in profile.seen:
            where = "already in the user's history, so it would not be recommended"
        return self.explainer.explain(profile, [candidate])[0], where

    def stream_explanation(self, profile: UserProfile, rec: Recommendation) -> Iterator[tuple[str, str]]:
        """``(text so far, source)`` pairs for the chat app; template explainers yield once."""
        if isinstance(self.explainer, LLMExplainer):
            yield from self.explainer.stream(rec.item, rec.evidence)
        else:
            yield rec.explanation, rec.explanation_source
