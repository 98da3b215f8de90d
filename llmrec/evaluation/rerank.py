"""A retriever -> LLM re-ranker pipeline for the harness (the LlamaRec set-up).

The retriever (any registry scorer, e.g. ``sasrec`` or ``ease``) ranks the full catalogue with the
input masked as the protocol masks it; its top ``n_candidates`` go to the pipeline's ranker (built by
``llmrec.pipeline``, as ``llmrec recommend`` builds it), whose scores reorder them. Items outside the
candidates are misses, so the retriever's Recall@n_candidates is the ceiling printed beside the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmrec.baselines import TrainData, get_scorer
from llmrec.errors import DataError
from llmrec.evaluation.harness import PipelineOutput
from llmrec.evaluation.protocols import LLAMAREC_MAX_LEN
from llmrec.progress import progress
from llmrec.types import Candidate, HistoryEntry, Item, UserProfile

if TYPE_CHECKING:
    from llmrec.config import RecommenderConfig

log = logging.getLogger(__name__)


class RerankPipeline:
    """``retriever`` scorer -> top ``n_candidates`` -> ``ranker_factory()`` (an LLMRanker) -> top-N."""

    def __init__(
        self,
        retriever: str,
        ranker_factory: Callable[[], Any] | None,
        item_ids: Sequence[str],
        items: Mapping[str, Item],
        ratings: Sequence[np.ndarray] | None = None,
        n_candidates: int = 20,
        retriever_params: Mapping[str, Any] | None = None,
        mask_window: int | None = LLAMAREC_MAX_LEN,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.retriever_name = retriever
        self.ranker_factory = ranker_factory
        self.item_ids = tuple(item_ids)
        self.items = items
        self.ratings = ratings
        self.n_candidates = n_candidates
        self.retriever_params = dict(retriever_params or {})
        self.mask_window = mask_window
        self.cache_dir = None if cache_dir is None else Path(cache_dir)  # slow retrievers train once per fit data
        self.name = f"{retriever}+llm" if ranker_factory else retriever
        self.scorer: Any = None
        self.ranker: Any = None
        self.fallbacks = 0
        # Users whose target the retriever missed: every order of their candidates misses it, so the LLM is
        # skipped for them when the targets are known (exact for hit metrics, 3-6x less LLM time).
        self.targets: Mapping[int, frozenset[int]] | None = None
        self.llm_users = 0

    def hyperparameters(self) -> dict[str, Any]:
        params = {"retriever": self.retriever_name, "n_candidates": self.n_candidates}
        if self.scorer is not None:
            params |= {f"retriever.{k}": v for k, v in self.scorer.hyperparameters().items()}
        return params

    def fit(self, train: TrainData) -> RerankPipeline:
        self.scorer = fit_retriever(self.retriever_name, train, self.retriever_params, self.cache_dir)
        self.ranker = self.ranker_factory() if self.ranker_factory else None
        if self.ranker is not None and hasattr(self.ranker, "set_popularity"):  # the fused ranker's popularity
            counts = train.item_counts  # from the fit data only: never the held-out items
            self.ranker.set_popularity({self.item_ids[i]: int(c) for i, c in enumerate(counts) if c})
        return self

    def profile(self, user: int, history: np.ndarray) -> UserProfile:
        """The profile the ranker reads for ``user`` with item indices ``history`` (ratings where known)."""
        ratings = self.ratings[user][: len(history)] if self.ratings is not None and user >= 0 else None
        entries = tuple(
            HistoryEntry(self.item_ids[i], None if ratings is None or np.isnan(ratings[n]) else float(ratings[n]))
            for n, i in enumerate(history)
        )
        return UserProfile(user_id=str(user), history=entries)

    def candidates(self, users: np.ndarray, histories: Sequence[np.ndarray], scorer: Any = None,
                   strict: bool = False) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """(top ``n_candidates`` dense ids per user, their scores): the retriever's order, the input masked as the
        protocol masks it. ``strict`` refuses a user with fewer candidates than that (a ranker needs them all)."""
        scores = np.array((scorer or self.scorer).score(users, histories), dtype=np.float32)
        for row, history in enumerate(histories):
            masked = history if self.mask_window is None else history[-self.mask_window :]
            scores[row, masked] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, : self.n_candidates]
        top_scores = np.take_along_axis(scores, top, axis=1)
        if strict:
            short = np.flatnonzero(~np.isfinite(top_scores).all(axis=1))
            if len(short) or top.shape[1] < self.n_candidates:
                row = int(short[0]) if len(short) else 0
                raise DataError(f"retriever {self.retriever_name} has fewer than {self.n_candidates} candidates for "
                                f"user {int(users[row])}; the ranker needs {self.n_candidates} (use a larger catalogue "
                                "or fewer candidates)")  # fmt: skip
        return top, top_scores

    def window(self, top: np.ndarray, scores: np.ndarray) -> list[Candidate]:
        """One user's candidates as the ranker receives them: retrieval order, each with the retriever's score."""
        return [Candidate(self.item_ids[c], float(s), (self.retriever_name,)) for c, s in zip(top, scores)]

    def recommend(self, users: np.ndarray, histories: Sequence[np.ndarray], n: int) -> PipelineOutput:
        top, top_scores = self.candidates(users, histories, strict=self.ranker is not None)
        ranked = np.full((len(users), n), -1, dtype=np.int64)
        for row in progress(range(len(users)), desc=f"rank {self.name}", total=len(users)):
            candidates = top[row]
            missed = self.targets is not None and not self.targets.get(int(users[row]), frozenset()) & set(
                candidates.tolist())
            if self.ranker is None or missed:
                order = candidates
            else:
                window = self.window(candidates, top_scores[row])
                result = self.ranker.rank(self.profile(int(users[row]), histories[row]), window, len(window))
                self.llm_users += 1
                self.fallbacks += bool(getattr(self.ranker, "last_note", ""))
                position = {self.item_ids[c]: c for c in candidates}
                order = np.array([position[c.item_id] for c in result], dtype=np.int64)
            ranked[row, : min(n, len(order))] = order[:n]
        return PipelineOutput(ranked=ranked, candidates=top.astype(np.int64))


def fit_retriever(name: str, train: TrainData, params: Mapping[str, Any] | None = None,
                  cache_dir: Path | None = None) -> Any:  # fmt: skip
    """The named scorer fitted on ``train``; with ``cache_dir`` a slow one (SASRec) trains once per fit data and
    settings (``<cache_dir>/cf/rerank-<name>-<hash>``) and is loaded after that. Where llmrec ships that very
    checkpoint (``shipped_retrievers``), it is installed there first and nothing trains."""
    if cache_dir is None:
        return get_scorer(name, **dict(params or {})).fit(train)
    from llmrec.baselines import get_checkpointed_scorer
    from llmrec.evaluation.shipped_retrievers import differs_from_shipped, install_shipped

    folder = retriever_folder(name, train, params, cache_dir)
    # the checkpoint a shipped fusion model was fitted over, when this is that fit (just installed: verified already)
    if not install_shipped(folder) and differs_from_shipped(folder):
        log.warning("%s: the checkpoint in %s was trained on this machine, not the one llmrec ships; figures will "
                    "differ from the shipped fusion cards (delete the folder to use the shipped one)", name, folder)
    return get_checkpointed_scorer(name, folder, **dict(params or {})).fit(train)


def retriever_folder(name: str, train: TrainData, params: Mapping[str, Any] | None, cache_dir: Path) -> Path:
    """Where ``fit_retriever`` keeps the checkpoints of ``name`` fitted on ``train`` with ``params``."""
    import hashlib
    import json

    digest = hashlib.sha256(np.concatenate(train.histories).astype(np.int64).tobytes())
    digest.update(json.dumps([dict(params or {}), train.seed, train.n_users, train.n_items], sort_keys=True).encode())
    return Path(cache_dir) / "cf" / f"rerank-{name}-{digest.hexdigest()[:12]}"


def card_agreement(row: Any, card: Mapping[str, Any]) -> str:
    """Whether a run over all test users gave its fusion card's test figures; where not, the figures and why."""
    want, got = card.get("test") or {}, getattr(row, "metrics", {})
    keys = [k for k in ("ndcg@10", "recall@10", "recall@20") if k in want and k in got]
    if not keys:
        return ""
    if all(abs(got[k] - want[k]) < 5e-6 for k in keys):
        return " (this run: the same)"
    # the retriever's checkpoints ship, so its order is every machine's; the language model's label scores move
    # with the processor's arithmetic (bf16 or f32, its kernels), and a tree model's splits can move with them
    names, shown = " / ".join(keys), " / ".join(f"{want[k]:.5f}" for k in keys)
    return (f" (the card's {names}: {shown}; this run differs: the language model's scores depend on the "
            "processor's arithmetic, docs/benchmarks/ranking.md section 13, and a retriever trained here rather "
            "than installed from llmrec gives other candidates, which the log says)")


def cached_scores(ranker: Any, cache_dir: Path) -> Any:
    """``ranker`` with its language model reading and writing the on-disk label-score cache (``llmrec.fusion``), so
    an evaluation run again scores no prompt twice; the fused ranker has it already."""
    from llmrec.fusion import SCORE_CACHE, CachedLLM, LabelScoreCache

    llm = getattr(ranker, "llm", None)
    if llm is not None and not isinstance(llm, CachedLLM) and hasattr(llm, "score_options"):
        ranker.llm = CachedLLM(llm, LabelScoreCache(Path(cache_dir) / SCORE_CACHE))
    return ranker


def rerank_variants(config: RecommenderConfig, adapter: Any = None) -> dict[str, RecommenderConfig]:
    """The rows ``evaluate --ranker llm`` compares beside the configured ranker (the fused order where a fusion
    model ships, ``run_rerank_evaluation``): the zero-shot model's order blended with the retriever's, and the
    ranker adapter's (``adapter``, else the shipped one) when there is one."""
    from llmrec.adapters import shipped_adapter

    if config.ranker.kind != "llm":
        return {"": config}
    blend = config.updated(ranker={"fusion": False})
    variants = {"zero-shot": blend.updated(llm={"use_default_adapter": False, "adapter": None})}
    adapter = adapter or config.llm.adapter or shipped_adapter(config.llm.model)
    if adapter is not None:
        variants["lora"] = blend.updated(llm={"adapter": adapter})
    return variants


def run_rerank_evaluation(
    config: RecommenderConfig,
    retriever: str = "ease",
    variants: Mapping[str, RecommenderConfig] | None = None,
    n_candidates: int = 20,
    max_users: int | None = None,
    seed: int = 0,
    skip_missed: bool = True,
    include_fused: bool = True,
) -> Any:
    """Retriever alone vs retriever -> the pipeline's ranker, one row per variant config (``rerank_variants``).

    Each row's ranker is built by the same road as ``llmrec recommend --retriever cf --cf-model <retriever>``
    (``Recommender(config).ranker``: the configured kind, model, adapter and blend). With ``include_fused`` and an
    ``llm`` ranker, the first row is the configured ranker itself when it orders by a shipped fusion model
    (``llmrec.fusion.default_fusion``: what ``--ranker llm`` runs over this retriever); the variants, which do
    not use it, follow (without ``include_fused`` no row uses one). Every row is measured on the same (seeded)
    users under the ``loo`` protocol; the retriever's Recall@``n_candidates`` is reported as the ceiling of each
    re-ranked row. Slow retrievers train once (cache folder).
    """
    from llmrec.data import load_dataset, preprocess
    from llmrec.evaluation.harness import EvalContext, evaluate_pipeline
    from llmrec.evaluation.protocols import make_split
    from llmrec.evaluation.report import EvaluationReport
    from llmrec.fusion import default_fusion
    from llmrec.paths import resolve_cache_dir
    from llmrec.pipeline import Recommender

    data = load_dataset(config.data.dataset, data_dir=config.data.data_dir, cache_dir=config.cache_dir,
                        allow_download=config.data.allow_download)  # fmt: skip
    seq = preprocess(data, min_count=config.data.min_count)
    split = make_split("loo", seq, seed)
    context = EvalContext.for_split(split)
    rows: dict[str, Any] = {}
    errors: dict[str, str] = {}
    notes_extra: dict[str, str] = {}
    cache = resolve_cache_dir(config.cache_dir)
    alone = RerankPipeline(retriever, None, seq.item_ids, data.items, seq.ratings, n_candidates=n_candidates,
                           cache_dir=cache)  # fmt: skip
    rows[retriever] = evaluate_pipeline(alone, split, context=context, max_users=max_users, seed=seed)
    over: dict[str, dict[str, Any]] = {"retrieval": {"retriever": "cf", "cf_model": retriever}}  # as recommend
    if not include_fused:
        over["ranker"] = {"fusion": False}
    config = config.updated(**over)
    variants = {label: v.updated(**over) for label, v in ({"": config} if variants is None else variants).items()}
    fusion = default_fusion(config, data.name) if config.ranker.kind == "llm" else None
    if fusion is not None:
        variants = {"": config, **{label: v for label, v in variants.items() if v != config}}
    for label, variant in variants.items():
        recommender = Recommender(variant, dataset=data)
        pipeline = RerankPipeline(retriever, lambda r=recommender: cached_scores(r.ranker, cache), seq.item_ids,
                                  data.items, seq.ratings, n_candidates=n_candidates, cache_dir=cache)  # fmt: skip
        if skip_missed:
            pipeline.targets = {int(u): frozenset(t.tolist()) for u, t in zip(split.test.users, split.test.targets)}
        name = f"{retriever}+{variant.ranker.kind}:{variant.llm.model}" + (f"+{label}" if label else "")
        pipeline.name = name
        try:
            rows[name] = evaluate_pipeline(pipeline, split, context=context, max_users=max_users, seed=seed)
        except Exception as exc:  # recorded; the other rows still count
            errors[name] = f"{type(exc).__name__}: {exc}"
        if pipeline.fallbacks:
            errors[f"{name} (fallbacks)"] = f"{pipeline.fallbacks} users fell back to retrieval order"
        if fusion is not None and variant == config and name in rows:
            if getattr(pipeline.ranker, "name", "") == "fused":  # the card it ranked by: compared over all users
                agreement = "" if max_users else card_agreement(rows[name], pipeline.ranker.model.card)
                notes_extra["fused order"] = (f"{name} (what --ranker llm runs over {retriever}) orders by "
                                              f"{fusion.name}; its card holds the validation and test figures"
                                              f"{agreement}")  # fmt: skip
            else:
                notes_extra["fused order"] = (f"{fusion.name} does not fit this run (the log says why); {name} blends "
                                              "instead")  # fmt: skip
        blend = getattr(pipeline.ranker, "blend", None)
        if blend is not None:
            notes_extra[f"{name} blend"] = f"{blend:g}"
        if skip_missed:
            notes_extra[name] = (
                f"the ranker ordered the {pipeline.llm_users} users whose test item was among the {n_candidates} "
                "candidates; the others keep retrieval order (exact for NDCG, Recall and MRR; coverage, novelty "
                "and diversity of this row mix both orders)"
            )
    users = rows[retriever].n_users
    notes = {"subset": f"{users} test users" + (f" (seeded random subset, seed {seed})" if max_users else ""),
             **notes_extra}  # fmt: skip
    return EvaluationReport(data.name, split.protocol, split.description, seq.stats(), rows, errors, seed, notes)
