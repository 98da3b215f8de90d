"""The one place that reads kind strings: small registries that turn configuration into pipeline parts.

Each registry maps a kind (``"llm"``, ``"template"``, ``"hybrid"``, ...) to a ``PartSpec``: a label people
read (settings menus, help) and a builder. Builders receive the ``Recommender`` that owns the shared
resources (catalogue, store, collaborative model, language model) and build the part on demand, so asking
for a ranker never loads the embedder and a template explainer never loads the language model. The CLI,
the app, the benchmarks and ``evaluate`` all get their parts here. Built-in kinds are registered by one
explicit call (``register_builtin_parts``) the first time a registry is read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from llmrec.errors import ConfigError, DataError, ModelError

if TYPE_CHECKING:
    from llmrec.config import RecommenderConfig
    from llmrec.types import UserProfile

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class PartSpec(Generic[T]):
    """One kind of part: what people read about it, how to build it, and whether it runs the language model."""

    kind: str
    label: str
    build: Callable[..., T]
    needs_llm: bool = False
    needs_text: bool = False  # needs the embedder and the vector store


class Registry(Generic[T]):
    """Kinds of one part (rankers, explainers, ...), in registration order."""

    def __init__(self, what: str, option: str) -> None:
        self.what = what
        self.option = option  # the config field / CLI option people set, for error messages
        self._specs: dict[str, PartSpec[T]] = {}

    def register(self, kind: str, label: str, build: Callable[..., T], needs_llm: bool = False,
                 needs_text: bool = False, replace: bool = False) -> PartSpec[T]:  # fmt: skip
        if kind in self._specs and not replace:
            raise ConfigError(f"{self.what} kind {kind!r} is already registered; pass replace=True to override it")
        self._specs[kind] = PartSpec(kind, label, build, needs_llm, needs_text)
        return self._specs[kind]

    def spec(self, kind: str) -> PartSpec[T]:
        _ensure_builtins()
        try:
            return self._specs[kind]
        except KeyError:
            raise ConfigError(f"unknown {self.what} {kind!r} ({self.option}); choose one of "
                              f"{', '.join(self._specs)}") from None  # fmt: skip

    def kinds(self) -> tuple[str, ...]:
        _ensure_builtins()
        return tuple(self._specs)

    def choices(self) -> list[tuple[str, str]]:
        """``(label, kind)`` pairs for a settings menu."""
        _ensure_builtins()
        return [(s.label, s.kind) for s in self._specs.values()]


RANKERS: Registry[Any] = Registry("ranker", "--ranker / ranker.kind")
EXPLAINERS: Registry[Any] = Registry("explainer", "--explainer / explainer.kind")
RETRIEVERS: Registry[Any] = Registry("retriever", "--retriever / retrieval.retriever")
LLM_BACKENDS: Registry[Any] = Registry("language-model backend", "llm.backend")
UNDERSTANDERS: Registry[Any] = Registry("understander", "understanding.kind")
_BUILTINS = False


def needs_llm(config: RecommenderConfig) -> bool:
    """Whether the configured ranker, explainer or message reader runs the language model."""
    return any(registry.spec(kind).needs_llm for registry, kind in (
        (RANKERS, config.ranker.kind), (EXPLAINERS, config.explainer.kind),
        (UNDERSTANDERS, config.understanding.kind)))  # fmt: skip


# Language models ----------------------------------------------------------------------------------
def _backend_kind(config: RecommenderConfig) -> str:
    backend = config.llm.backend
    if backend == "auto":
        return "openai" if config.llm.url else "local"
    return backend


def build_llm(config: RecommenderConfig) -> Any:
    """The language model the config names, with its task adapters (shipped ones unless told otherwise)."""
    return LLM_BACKENDS.spec(_backend_kind(config)).build(config)


def adapter_paths(config: RecommenderConfig) -> dict[str, Any]:
    """Task -> adapter folder: the configured ones, else the shipped ones (unless ``use_default_adapter`` is off).

    The shipped understanding adapter is loaded only when the model reads messages (``understanding.kind`` "llm" or
    "hybrid"): with the rules reader it would never run, yet it would cost an OpenVINO probe export and a load."""
    from llmrec.adapters import shipped_adapter

    cfg = config.llm
    given = {"rank": cfg.adapter, "explain": cfg.explain_adapter, "understand": cfg.understand_adapter}
    wanted = {"rank", "explain"} | ({"understand"} if config.understanding.kind in ("llm", "hybrid") else set())
    paths = {}
    for task, path in given.items():
        shipped = cfg.use_default_adapter and task in wanted
        path = path or (shipped_adapter(cfg.model, task) if shipped else None)
        if path is not None:
            paths[task] = path
    return paths


def _local_llm(config: RecommenderConfig) -> Any:
    import logging

    from llmrec.llm import prepare_model
    from llmrec.llm.runtime import load_llm

    cfg = config.llm
    folder = prepare_model(cfg.model, cache_dir=config.cache_dir, allow_network=cfg.allow_network)
    adapters = adapter_paths(config)
    logging.getLogger(__name__).info("language model %s (%s runtime); adapters %s", cfg.model, cfg.runtime,
                                     adapters or "none (zero-shot)")
    return load_llm(folder, cfg.model, adapters, runtime=cfg.runtime, threads=cfg.threads,
                    cache_dir=config.cache_dir, dtype=cfg.dtype, precision=cfg.precision)


def _served_llm(config: RecommenderConfig) -> Any:
    from llmrec.llm.openai_http import OpenAICompatLLM

    cfg = config.llm
    if not cfg.url:
        raise ConfigError("llm.backend 'openai' needs a server URL; pass --llm-url http://127.0.0.1:8000/v1")
    given = cfg.adapter or cfg.explain_adapter or cfg.understand_adapter
    if given is not None:
        raise ConfigError(
            f"--adapter {given} cannot be loaded into an LLM server (--llm-url); "
            "adapters on a server are chosen by --model, the name the server gives the adapter"
        )
    return OpenAICompatLLM(cfg.url, cfg.model)


def _fake_llm(config: RecommenderConfig) -> Any:
    from llmrec.llm.base import FakeLLM

    return FakeLLM()


# Rankers --------------------------------------------------------------------------------------------
def ranker_blend(config: RecommenderConfig, llm: Any) -> float:
    """``ranker.blend`` when set, else the blend validated in the loaded ranker adapter's card (the shipped
    card's zero-shot sweep when the model runs without a ranker adapter). A model with neither has no validated
    blend: it gets the default model's zero-shot blend, with a warning, because every zero-shot order measured
    alone was below the retriever's (ml-latest-small: 0.5B 0.0645, 1.5B 0.0616 against the ensemble's 0.0772)
    and an unmeasured model should not override the candidate order on its own."""
    from llmrec.adapters import read_card, shipped_adapter
    from llmrec.llm.registry import DEFAULT_LLM

    if config.ranker.blend is not None:
        return config.ranker.blend
    adapter = (getattr(llm, "adapters", None) or {}).get("rank") or getattr(llm, "adapter", None)
    card = read_card(adapter or shipped_adapter(config.llm.model))
    if card is not None:
        return card.validated_blend(zero_shot=adapter is None)
    prior = read_card(shipped_adapter(DEFAULT_LLM))
    blend = prior.validated_blend(zero_shot=True) if prior is not None else 0.0
    log.warning("no ranker card for %s: its order was never validated; blending it with the retriever's at %g "
                "(%s's validated zero-shot blend); set ranker.blend to choose", config.llm.model, blend, DEFAULT_LLM)
    return blend


def build_ranker(config: RecommenderConfig, owner: Any) -> Any:
    """The configured ranker; ``owner`` provides ``items`` and (when needed) ``llm``."""
    return RANKERS.spec(config.ranker.kind).build(config, owner)


def _llm_ranker(config: RecommenderConfig, owner: Any) -> Any:
    """The fused order when a fusion model ships for this data set and cf model (``fusion.default_fusion``: the
    best pipeline measured), else the language model's order blended with the retriever's."""
    from llmrec.ranking import LLMRanker

    fused = _default_fused_ranker(config, owner)
    if fused is not None:
        return fused
    llm = owner.llm
    return LLMRanker(llm, owner.items, max_history=config.ranker.max_history, blend=ranker_blend(config, llm))


def _default_fused_ranker(config: RecommenderConfig, owner: Any) -> Any:
    from llmrec.fusion import default_fusion, fused_sections

    dataset = getattr(owner, "dataset", None)
    path = default_fusion(config, dataset.name) if dataset is not None and hasattr(owner, "variant") else None
    if path is None:
        return None
    try:  # a variant: the fused kind with the card's language-model settings, sharing the owner's parts
        return owner.variant(**fused_sections(path)).ranker
    except ModelError as exc:  # fitted for other settings (e.g. the cf model's): the blend is the validated order
        log.warning("not ordering by %s: %s; the language model's order is blended with retrieval", path.name, exc)
        return None


def _fused_ranker(config: RecommenderConfig, owner: Any) -> Any:
    from llmrec.fusion import build_fused_ranker

    return build_fused_ranker(config, owner)


def _passthrough_ranker(config: RecommenderConfig, owner: Any) -> Any:
    from llmrec.ranking import PassthroughRanker

    return PassthroughRanker()


# Explainers ---------------------------------------------------------------------------------------
def build_explainer(config: RecommenderConfig, owner: Any, kind: str | None = None) -> Any:
    """The configured explainer (or the one of ``kind``)."""
    return EXPLAINERS.spec(kind or config.explainer.kind).build(config, owner)


def build_evidence_explainer(config: RecommenderConfig, owner: Any) -> Any:
    """The explainer that writes from the evidence alone, instantly (no model call)."""
    return build_explainer(config, owner, kind="template")


def _llm_explainer(config: RecommenderConfig, owner: Any) -> Any:
    from llmrec.explanation import LLMExplainer

    return LLMExplainer(owner.llm, owner.items, max_new_tokens=config.explainer.max_new_tokens)


def _template_explainer(config: RecommenderConfig, owner: Any) -> Any:
    from llmrec.explanation import TemplateExplainer

    return TemplateExplainer(owner.items)


# Retrievers -------------------------------------------------------------------------------------------
HYBRID_TEXT_WEIGHT = 0.25  # RRF weight of text vs cf (1.0); best on the validation item of ml-latest-small


def build_retriever(config: RecommenderConfig, owner: Any, profile: UserProfile) -> tuple[Any, list[str]]:
    """The configured retriever for ``profile`` (what it allows), optionally diversified; notes say what was
    left out and why. ``(None, notes)`` when nothing can retrieve for this profile."""
    cfg = config.retrieval
    retriever, notes = RETRIEVERS.spec(cfg.retriever).build(config, owner, profile)
    if retriever is not None and cfg.quality_prior:
        from llmrec.retrieval.prior import PriorRetriever, is_cold_start

        prior = owner.quality_prior
        if prior.values and is_cold_start(profile, prior.config):  # little evidence: known and liked films first
            retriever = PriorRetriever(retriever, prior, owner.items)
    if retriever is not None and cfg.diversity > 0:
        from llmrec.retrieval.diversify import DiversifiedRetriever, MMRDiversifier

        retriever = DiversifiedRetriever(retriever, MMRDiversifier(owner.index, lam=1.0 - cfg.diversity))
    return retriever, notes


def uses_text(config: RecommenderConfig) -> bool:
    """Whether the configured retrieval needs the embedder and the vector store."""
    return RETRIEVERS.spec(config.retrieval.retriever).needs_text or config.retrieval.diversity > 0


def _text_retriever(config: RecommenderConfig, owner: Any, profile: UserProfile) -> tuple[Any, list[str]]:
    from llmrec.retrieval.text import TextRetriever

    return TextRetriever(owner.index, owner.embedder, items=owner.items), []


def _cf_retriever(config: RecommenderConfig, owner: Any, profile: UserProfile) -> tuple[Any, list[str]]:
    from llmrec.retrieval.collaborative import CollaborativeRetriever

    if not profile.history:
        return None, ["collaborative retrieval skipped: it needs a history (--user with ratings, or --like titles)"]
    scorer, seq = owner.collaborative
    return CollaborativeRetriever(scorer, seq, label=config.retrieval.cf_model, items=owner.items), []


def dialogue_file(config: RecommenderConfig) -> Any:
    """The training dialogues of the dialogue scorer: ``retrieval.dialogue_file``, else
    ``<data dir>/redial/train.jsonl.gz`` (None without a data folder)."""
    from pathlib import Path

    from llmrec.data.redial import TRAIN_FILE

    if config.retrieval.dialogue_file is not None:
        return config.retrieval.dialogue_file
    return Path(config.data.data_dir) / TRAIN_FILE if config.data.data_dir is not None else None


def build_dialogue_scorer(config: RecommenderConfig, owner: Any) -> Any:
    """The dialogue model fitted on ``dialogue_file(config)`` and mapped onto the owner's catalogue (and onto the
    films outside it, ``movies_all.csv``, when the data folder has them: read when a profile likes one)."""
    import numpy as np

    from llmrec.chat.outside import outside_films
    from llmrec.retrieval.dialogue import load_dialogue_scorer

    path = dialogue_file(config)
    if path is None:
        raise DataError("no training dialogues: set retrieval.dialogue_file, or --data-dir to a folder holding "
                        "redial/train.jsonl.gz")  # fmt: skip
    ids, counts = np.unique(owner.dataset.interactions.item_ids, return_counts=True)
    popularity = dict(zip(ids.tolist(), counts.tolist()))
    return load_dialogue_scorer(path, owner.items, popularity, outside=outside_films(owner))


def _dialogue_retriever(config: RecommenderConfig, owner: Any, profile: UserProfile) -> tuple[Any, list[str]]:
    skipped = "dialogue retrieval skipped: it needs films the user named or liked"
    if not profile.history and not profile.outside_liked:
        return None, [skipped]
    try:
        scorer = owner.dialogue_scorer
    except DataError as exc:
        if config.retrieval.dialogue_file is None and config.retrieval.retriever != "dialogue":
            import logging  # the default file is optional: a data folder without ReDial's dialogues is no news

            logging.getLogger(__name__).info("dialogue retrieval skipped: %s", exc)
            return None, []
        return None, [f"dialogue retrieval skipped: {exc}"]
    if not profile.history and not scorer.outside_context(profile.outside_liked):  # outside films it lacks: as before
        return None, [skipped]
    return scorer.retriever(owner.items), []


def _conversation_sized(config: RecommenderConfig, profile: UserProfile) -> bool:
    """Whether the profile is what a conversation builds (a few liked films), where what people suggest to each
    other in conversations helps; a long rating history is the collaborative model's to read."""
    from llmrec.profile import liked_weights

    return len(liked_weights(profile)) <= config.retrieval.dialogue_max_liked


def _hybrid_retriever(config: RecommenderConfig, owner: Any, profile: UserProfile) -> tuple[Any, list[str]]:
    from llmrec.retrieval.fusion import fuse_available

    text, notes = _text_retriever(config, owner, profile)
    try:
        cf, more = _cf_retriever(config, owner, profile)
    except DataError as exc:  # e.g. a catalogue too small for the collaborative model: text alone
        cf, more = None, [f"collaborative retrieval skipped: {exc}"]
    notes += more
    weight = config.retrieval.dialogue_weight if _conversation_sized(config, profile) else 0.0
    dialogue, more = _dialogue_retriever(config, owner, profile) if weight > 0 else (None, [])
    notes += more if profile.history else []  # a newcomer's text-only list needs no note about dialogues
    weights = {"text": HYBRID_TEXT_WEIGHT, "cf": 1.0, "dialogue": weight}
    return fuse_available({"text": text, "cf": cf, "dialogue": dialogue}, weights), notes


# Understanders (reading chat messages) ------------------------------------------------------------------
def build_understander(config: RecommenderConfig, owner: Any) -> Any:
    """The configured reader of chat messages; the language model is built only when a message needs it."""
    return UNDERSTANDERS.spec(config.understanding.kind).build(config, owner)


def _llm_understander(config: RecommenderConfig, owner: Any) -> Any:
    from llmrec.chat.readers import LLMUnderstander

    return _model_reader(LLMUnderstander, config, owner)


def _hybrid_understander(config: RecommenderConfig, owner: Any) -> Any:
    from llmrec.chat.readers import HybridUnderstander

    return _model_reader(HybridUnderstander, config, owner)


def _model_reader(reader: Any, config: RecommenderConfig, owner: Any) -> Any:
    """A reader that calls the owner's language model, built on the first message that needs it."""
    from llmrec.chat.readers import popularity_of

    cfg = config.understanding
    return reader(lambda: owner.llm, owner.items, lambda: popularity_of(owner.dataset),
                  max_new_tokens=cfg.max_new_tokens, prompt_version=cfg.prompt_version)  # fmt: skip


def _rule_understander(config: RecommenderConfig, owner: Any) -> Any:
    from llmrec.chat.readers import RuleUnderstander, popularity_of

    return RuleUnderstander(owner.items, lambda: popularity_of(owner.dataset))


# Registration -------------------------------------------------------------------------------------
def register_builtin_parts() -> None:
    """Register the built-in kinds (called once, on first use of any registry)."""
    LLM_BACKENDS.register("local", "This machine (transformers)", _local_llm)
    LLM_BACKENDS.register("openai", "An OpenAI-compatible server (--llm-url)", _served_llm)
    LLM_BACKENDS.register("fake", "Scripted stand-in for tests (no model)", _fake_llm)
    RANKERS.register("llm", "Language model re-ranks", _llm_ranker, needs_llm=True)
    RANKERS.register("passthrough", "Retrieval order (fast)", _passthrough_ranker)
    RANKERS.register("fused", "Language model fused with retrieval signals (learned)", _fused_ranker, needs_llm=True)
    EXPLAINERS.register("llm", "Written by the language model", _llm_explainer, needs_llm=True)
    EXPLAINERS.register("template", "Templates from the evidence (fast)", _template_explainer)
    RETRIEVERS.register("hybrid", "Text and collaborative, fused", _hybrid_retriever, needs_text=True)
    RETRIEVERS.register("text", "Text similarity (vector store)", _text_retriever, needs_text=True)
    RETRIEVERS.register("cf", "Collaborative model", _cf_retriever)
    RETRIEVERS.register("dialogue", "Films recommended together in conversations", _dialogue_retriever)
    UNDERSTANDERS.register("llm", "The language model reads each message", _llm_understander, needs_llm=True)
    UNDERSTANDERS.register("rules", "Rules read each message (fast)", _rule_understander)
    UNDERSTANDERS.register("hybrid", "Rules read each message; the language model decides stances they miss",
                           _hybrid_understander, needs_llm=True)  # fmt: skip


def _ensure_builtins() -> None:
    global _BUILTINS
    if not _BUILTINS:
        _BUILTINS = True
        register_builtin_parts()
