"""The evaluation harness: grid search on validation, a final fit, test metrics, timings.

``evaluate_scorer`` runs one ``Scorer`` through a ``Split``; ``evaluate_pipeline`` runs a
retriever -> ranker ``Pipeline`` and reports the retriever's own Recall@K beside it (the ceiling any
re-ranker can reach); ``run_evaluation`` is the entry point the CLI calls. One model failing is
recorded in the report's ``errors`` and does not stop the others.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from llmrec.baselines.base import Scorer, TrainData
from llmrec.baselines.registry import ScorerSpec, scorer_spec
from llmrec.errors import ConfigError, LlmrecError
from llmrec.evaluation.metrics import KS, beyond_accuracy, hit_matrix, ranking_metrics, top_k
from llmrec.evaluation.protocols import PROTOCOLS, EvalSet, Split, make_split, mask_scores
from llmrec.evaluation.report import EvaluationReport, ModelResult, Trial
from llmrec.progress import progress

log = logging.getLogger(__name__)

SELECTION_METRIC = "ndcg@10"
BEYOND_K = 10
TIE_POLICY = "rank = #items with a strictly greater score + #items with an equal score and a lower dense id"


@dataclass(frozen=True)
class EvalContext:
    """What beyond-accuracy metrics need besides the lists."""

    n_items: int
    item_counts: np.ndarray  # training popularity (users per item) of the fit data
    n_train_users: int
    embeddings: np.ndarray | None = None  # (n_items, dim) for intra-list diversity
    ks: tuple[int, ...] = KS
    beyond_k: int = BEYOND_K

    @classmethod
    def for_split(cls, split: Split, embeddings: np.ndarray | None = None, ks: Sequence[int] = KS) -> EvalContext:
        train = split.final_train
        users_with_items = int(sum(1 for h in train.histories if len(h)))
        return cls(split.n_items, train.item_counts, users_with_items, embeddings, tuple(ks))


def list_metrics(ranked: np.ndarray, cases: EvalSet, context: EvalContext, with_se: bool = True) -> dict[str, float]:
    """All test metrics of ranked lists (n_users, >= max ks) against ``cases``."""
    hits = hit_matrix(ranked, cases.targets)
    metrics = ranking_metrics(hits, cases.n_relevant, context.ks, with_se=with_se)
    metrics.update(
        beyond_accuracy(
            ranked, context.beyond_k, context.n_items, context.item_counts, context.n_train_users, context.embeddings
        )
    )
    return metrics


def rank_with_scorer(scorer: Scorer, cases: EvalSet, k: int, batch_size: int = 1024) -> tuple[np.ndarray, float]:
    """Top-``k`` lists for every case (history masked, sampled protocols restricted) and scoring seconds."""
    ranked = np.full((cases.n_users, k), -1, dtype=np.int64)
    seconds = 0.0
    for start in range(0, cases.n_users, batch_size):
        block = cases.subset(slice(start, start + batch_size))
        began = time.perf_counter()
        scores = scorer.score(block.users, block.histories)
        seconds += time.perf_counter() - began
        ranked[start : start + block.n_users] = top_k(mask_scores(scores, block), k)
    return ranked, seconds


def grid(search_space: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of the search space, in declaration order (the first best point wins ties)."""
    keys = list(search_space)
    return [dict(zip(keys, values)) for values in itertools.product(*(search_space[k] for k in keys))]


def _as_spec(model: str | ScorerSpec | Callable[..., Scorer]) -> ScorerSpec:
    if isinstance(model, ScorerSpec):
        return model
    if isinstance(model, str):
        return scorer_spec(model)
    name = getattr(model, "name", getattr(model, "__name__", "model"))
    return ScorerSpec(str(name), model, {}, str(name))


def grid_search(
    spec: ScorerSpec, split: Split, search_space: Mapping[str, Sequence[Any]]
) -> tuple[dict, tuple[Trial, ...]]:
    """Fit each grid point on ``split.tune_train``, score NDCG@10 on ``split.valid``; return the best point."""
    points = grid(search_space)
    trials: list[Trial] = []
    k = int(SELECTION_METRIC.split("@")[1])
    for params in progress(points, desc=f"search {spec.name}", total=len(points)):
        began = time.perf_counter()
        try:
            scorer = spec.build(**params).fit(split.tune_train)
            ranked, _ = rank_with_scorer(scorer, split.valid, k)
            hits = hit_matrix(ranked, split.valid.targets)
            score = ranking_metrics(hits, split.valid.n_relevant, (k,))[SELECTION_METRIC]
            trials.append(Trial(params, score, time.perf_counter() - began))
        except Exception as exc:  # one bad grid point must not end the search
            log.warning("%s %s failed during search: %s", spec.name, params, exc)
            trials.append(Trial(params, float("nan"), time.perf_counter() - began, f"{type(exc).__name__}: {exc}"))
        log.debug("%s %s -> valid %s %.4f", spec.name, params, SELECTION_METRIC, trials[-1].score)
    scored = [t for t in trials if t.error is None]
    if not scored:
        raise LlmrecError(f"{spec.name}: every grid point failed; first error: {trials[0].error}")
    best = max(scored, key=lambda t: t.score)  # max keeps the first of equal scores
    return dict(best.params), tuple(trials)


def evaluate_scorer(
    model: str | ScorerSpec | Callable[..., Scorer],
    split: Split,
    *,
    search_space: Mapping[str, Sequence[Any]] | None = None,
    do_search: bool = True,
    context: EvalContext | None = None,
) -> ModelResult:
    """Search on validation (``do_search``), fit on ``split.final_train``, rank the test cases, measure.

    Without search the model runs with its registry defaults and its Config defaults.
    """
    spec = _as_spec(model)
    context = context or EvalContext.for_split(split)
    space = spec.search_space if search_space is None else search_space
    params: dict[str, Any] = {}
    trials: tuple[Trial, ...] = ()
    began = time.perf_counter()
    if do_search and any(len(v) > 1 for v in space.values()):
        params, trials = grid_search(spec, split, space)
    elif do_search:  # a one-point grid: nothing to choose
        params = {key: values[0] for key, values in space.items()}
    search_seconds = time.perf_counter() - began

    scorer = spec.build(**params)
    began = time.perf_counter()
    scorer.fit(split.final_train)
    fit_seconds = time.perf_counter() - began
    ranked, score_seconds = rank_with_scorer(scorer, split.test, max(context.ks))
    metrics = list_metrics(ranked, split.test, context)
    log.info("%s: %s %.4f (fit %.1fs, score %.1fs)", spec.name, SELECTION_METRIC, metrics[SELECTION_METRIC],
             fit_seconds, score_seconds)  # fmt: skip
    return ModelResult(
        spec.name,
        spec.label,
        metrics,
        scorer.hyperparameters(),
        fit_seconds,
        score_seconds,
        search_seconds,
        trials,
        n_users=split.test.n_users,
    )


# Pipelines (retriever -> ranker) ---------------------------------------------------------------
@dataclass(frozen=True)
class PipelineOutput:
    """Per user: the final top-N and the retriever's candidate list, dense ids, -1 padded, best first."""

    ranked: np.ndarray  # (n_users, N)
    candidates: np.ndarray  # (n_users, C), the retriever's order

    def __post_init__(self) -> None:
        if self.ranked.ndim != 2 or self.candidates.ndim != 2 or len(self.ranked) != len(self.candidates):
            raise LlmrecError(f"PipelineOutput: shapes {self.ranked.shape} and {self.candidates.shape} do not match")


@runtime_checkable
class Pipeline(Protocol):
    """A retriever followed by a ranker (e.g. an LLM re-ranker); it must mask each user's history itself."""

    name: str

    def fit(self, train: TrainData) -> Any: ...

    def recommend(self, users: np.ndarray, histories: Sequence[np.ndarray], n: int) -> PipelineOutput: ...


def _check_subset(output: PipelineOutput, name: str) -> None:
    for row, (ranked, candidates) in enumerate(zip(output.ranked, output.candidates)):
        outside = np.setdiff1d(ranked[ranked >= 0], candidates[candidates >= 0])
        if len(outside):
            raise LlmrecError(f"pipeline {name}: ranked items {outside[:5].tolist()} of row {row} are not candidates")


def evaluate_pipeline(
    pipeline: Pipeline,
    split: Split,
    *,
    context: EvalContext | None = None,
    batch_size: int = 256,
    max_users: int | None = None,
    seed: int = 0,
) -> ModelResult:
    """Fit on ``split.final_train``, recommend for the test cases, measure the lists and the candidates.

    ``max_users`` evaluates a seeded random subset of the test cases (for slow rankers such as an
    LLM); compare it only with other models measured on the same subset (``ModelResult.n_users``).
    """
    if split.sampled:
        raise ConfigError(f"pipelines are evaluated with full-ranking protocols only, not {split.protocol!r}")
    context = context or EvalContext.for_split(split)
    cases = split.test
    if max_users is not None and max_users < cases.n_users:
        cases = cases.take(np.sort(np.random.default_rng(seed).choice(cases.n_users, max_users, replace=False)))
    k = max(context.ks)
    began = time.perf_counter()
    pipeline.fit(split.final_train)
    fit_seconds = time.perf_counter() - began
    ranked_parts, candidate_parts, seconds = [], [], 0.0
    starts = range(0, cases.n_users, batch_size)
    for start in progress(starts, desc=f"recommend {pipeline.name}", total=len(starts)):
        block = cases.subset(slice(start, start + batch_size))
        began = time.perf_counter()
        output = pipeline.recommend(block.users, block.histories, k)
        seconds += time.perf_counter() - began
        _check_subset(output, pipeline.name)
        ranked_parts.append(_pad(output.ranked, k))
        candidate_parts.append(output.candidates)
    width = max(c.shape[1] for c in candidate_parts)
    ranked = np.concatenate(ranked_parts)
    candidates = np.concatenate([_pad(c, width) for c in candidate_parts])
    metrics = list_metrics(ranked, cases, context)
    candidate_hits = hit_matrix(candidates, cases.targets)
    retriever_ks = tuple(sorted({*(k for k in context.ks if k < width), width}))
    ceiling = ranking_metrics(candidate_hits, cases.n_relevant, retriever_ks)
    retriever = {"n_candidates": float(width)} | {key: v for key, v in ceiling.items() if key.startswith("recall")}
    hyper = dict(getattr(pipeline, "hyperparameters", dict)())
    return ModelResult(pipeline.name, pipeline.name, metrics, hyper, fit_seconds, seconds, retriever=retriever,
                       n_users=cases.n_users)  # fmt: skip


def _pad(lists: np.ndarray, width: int) -> np.ndarray:
    lists = np.asarray(lists, dtype=np.int64)
    out = np.full((len(lists), width), -1, dtype=np.int64)
    out[:, : min(width, lists.shape[1])] = lists[:, :width]
    return out


# Entry point -----------------------------------------------------------------------------------
def genre_embeddings(dataset: Any, item_ids: Sequence[str]) -> np.ndarray | None:
    """Multi-hot genre vectors for the dense items, or None when under half of them have genres."""
    genres_of = [tuple(dataset.items[i].genres) if i in dataset.items else () for i in item_ids]
    if sum(1 for g in genres_of if g) < len(item_ids) / 2:
        return None
    vocabulary = {g: j for j, g in enumerate(sorted({g for gs in genres_of for g in gs}))}
    matrix = np.zeros((len(item_ids), len(vocabulary)), dtype=np.float32)
    for row, genres in enumerate(genres_of):
        matrix[row, [vocabulary[g] for g in genres]] = 1.0
    return matrix


def evaluate_models(
    split: Split,
    models: Sequence[str | ScorerSpec],
    *,
    dataset: str,
    stats: Mapping[str, int],
    context: EvalContext | None = None,
    search: bool = True,
    seed: int = 0,
    notes: Mapping[str, str] | None = None,
) -> EvaluationReport:
    """Evaluate each model on ``split``; a model that raises is recorded in ``errors``, the rest still run."""
    specs = [_as_spec(model) for model in models]  # unknown names fail here, before any work
    context = context or EvalContext.for_split(split)
    results: dict[str, ModelResult] = {}
    errors: dict[str, str] = {}
    for spec in specs:
        log.info("evaluating %s on %s (%s)", spec.name, dataset, split.protocol)
        try:
            results[spec.name] = evaluate_scorer(spec, split, do_search=search, context=context)
        except Exception as exc:  # recorded; the other models still run
            log.warning("%s failed: %s", spec.name, exc)
            errors[spec.name] = f"{type(exc).__name__}: {exc}"
    all_notes = {
        "ties": TIE_POLICY,
        "final fit": split.final_fit,
        "selection": f"grid search on validation {SELECTION_METRIC}" if search else "registry defaults, no search",
        "novelty": "mean -log2(share of training users who interacted with the item)",
        "gini": "Gini of exposure over the whole catalogue (0 even, 1 concentrated)",
    }
    if context.embeddings is None:
        all_notes["diversity"] = "not computed: no item embeddings given"
    if split.sampled:
        all_notes["SAMPLED"] = "sampled-negative ranking; not comparable with full-ranking protocols"
    all_notes.update(notes or {})
    return EvaluationReport(dataset, split.protocol, split.description, dict(stats), results, errors, seed, all_notes)


def run_evaluation(
    dataset: str,
    models: list[str],
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    protocol: str = "loo",
    seed: int = 0,
    search: bool = True,
    allow_download: bool = True,
) -> EvaluationReport:
    """Evaluate registry ``models`` on ``dataset`` under ``protocol``; failures land in ``errors``."""
    from llmrec.data import load_dataset, preprocess

    if not models:
        raise ConfigError("no models given; pass at least one, e.g. --models pop,ease")
    specs = [scorer_spec(name) for name in models]  # unknown names fail here, before any work
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; known protocols: {', '.join(PROTOCOLS)}")
    data = load_dataset(dataset, data_dir=data_dir, cache_dir=cache_dir, allow_download=allow_download)
    seq = preprocess(data)
    split = make_split(protocol, seq, seed)
    embeddings = genre_embeddings(data, seq.item_ids)
    basis = "genre multi-hot vectors"
    if embeddings is None:  # no genres: items as their columns of the training interaction matrix
        embeddings = split.final_train.user_items.T.toarray()
        basis = "item co-occurrence (user) vectors of the fit data"
    notes = {"diversity": f"intra-list diversity = mean pairwise cosine distance of {basis}"}
    return evaluate_models(
        split,
        specs,
        dataset=dataset,
        stats=seq.stats(),
        context=EvalContext.for_split(split, embeddings),
        search=search,
        seed=seed,
        notes=notes,
    )
