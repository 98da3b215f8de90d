"""Protocols, the harness, pipelines and reports on a tiny two-cluster data set; one slow real run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from llmrec.baselines import Scorer, TrainData, get_scorer
from llmrec.baselines.registry import ScorerSpec, scorer_spec
from llmrec.data.split import SequenceData
from llmrec.errors import ConfigError, LlmrecError
from llmrec.evaluation import (
    EvalContext,
    PipelineOutput,
    evaluate_models,
    evaluate_pipeline,
    evaluate_scorer,
    grid,
    make_split,
    mask_scores,
    run_evaluation,
)
from llmrec.evaluation.protocols import loo_split

N_USERS, N_ITEMS, LENGTH = 30, 24, 10


def toy_sequences(seed: int = 0) -> SequenceData:
    """Users 0-14 take items 0-11, users 15-29 items 12-23; 10 items each, distinct timestamps."""
    rng = np.random.default_rng(seed)
    half = N_ITEMS // 2
    sequences = tuple(
        rng.choice(half, size=LENGTH, replace=False) + (0 if u < N_USERS // 2 else half) for u in range(N_USERS)
    )
    stamps = tuple(np.arange(LENGTH, dtype=np.int64) * 100 + rng.integers(0, 100) for _ in range(N_USERS))
    return SequenceData(
        name="toy",
        user_ids=tuple(str(u) for u in range(N_USERS)),
        item_ids=tuple(str(i) for i in range(N_ITEMS)),
        sequences=sequences,
        ratings=tuple(np.full(LENGTH, 4.0) for _ in range(N_USERS)),
        timestamps=stamps,
    )


@pytest.fixture(scope="module")
def seq() -> SequenceData:
    return toy_sequences()


def _stats(seq: SequenceData) -> dict[str, int]:
    return seq.stats()


class Broken(Scorer):
    name = "broken"

    def _fit(self, train: TrainData) -> None:
        raise RuntimeError("this model always fails")

    def _score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:  # pragma: no cover
        raise AssertionError


BROKEN = ScorerSpec("broken", Broken, {}, "always fails")
EASE_SMALL = ScorerSpec("ease", scorer_spec("ease").factory, {"l2": [1.0, 10.0]}, "EASE")


def test_loo_split_is_llamarec_leave_one_out(seq: SequenceData):
    split = loo_split(seq, mask_window=3)
    u = 4
    assert split.valid.targets[u].tolist() == [seq.sequences[u][-2]]
    assert split.test.targets[u].tolist() == [seq.sequences[u][-1]]
    assert split.valid.histories[u].tolist() == seq.sequences[u][:-2].tolist()
    assert split.test.histories[u].tolist() == seq.sequences[u][:-1].tolist()
    assert split.tune_train.histories[u].tolist() == seq.sequences[u][:-2].tolist()
    assert split.final_train.histories[u].tolist() == seq.sequences[u][:-1].tolist()
    assert split.tune_train.validation is not None and split.final_train.validation is None
    # LlamaRec's mask: only the last ``mask_window`` input items are set to -inf
    scores = mask_scores(np.zeros((N_USERS, N_ITEMS), dtype=np.float32), split.test)
    masked = set(np.flatnonzero(scores[u] == -np.inf).tolist())
    assert masked == set(seq.sequences[u][-4:-1].tolist())
    full = make_split("loo-fullmask", seq)
    scores = mask_scores(np.zeros((N_USERS, N_ITEMS), dtype=np.float32), full.test)
    assert set(np.flatnonzero(scores[u] == -np.inf).tolist()) == set(seq.sequences[u][:-1].tolist())
    assert make_split("loo", seq).protocol == "loo"
    train_only = loo_split(seq, final_fit="train")
    assert train_only.final_train is train_only.tune_train
    with pytest.raises(ConfigError, match="final_fit"):
        loo_split(seq, final_fit="everything")


def test_unknown_protocol_names_the_known_ones(seq: SequenceData):
    with pytest.raises(ConfigError, match=r"known protocols: loo, .*temporal.*loo-sampled100"):
        make_split("leave-two-out", seq)


def test_temporal_split(seq: SequenceData):
    split = make_split("temporal", seq)
    cut = int(np.quantile(np.concatenate(seq.timestamps), 0.8, method="lower"))
    for row, u in enumerate(split.test.users):
        ts = seq.timestamps[u]
        assert split.test.histories[row].tolist() == seq.sequences[u][ts < cut].tolist()
        assert set(split.test.targets[row].tolist()) == set(seq.sequences[u][ts >= cut].tolist())
    assert split.final_train.n_interactions == int((np.concatenate(seq.timestamps) < cut).sum())
    assert split.tune_train.n_interactions < split.final_train.n_interactions
    assert "temporal" in split.description


def test_sampled_split_ranks_target_among_unseen_negatives(seq: SequenceData):
    split = make_split("loo-sampled100", seq)  # only 14 unseen items exist here: all of them are drawn
    assert split.sampled and split.protocol == "loo-sampled100"
    for u in range(N_USERS):
        candidates = split.test.candidates[u]
        assert candidates[0] == seq.sequences[u][-1]
        assert not set(candidates[1:].tolist()) & set(seq.sequences[u].tolist())
    again = make_split("loo-sampled100", seq)
    assert all(np.array_equal(a, b) for a, b in zip(split.test.candidates, again.test.candidates))


def test_evaluate_scorer_searches_and_reports(seq: SequenceData):
    split = loo_split(seq)
    result = evaluate_scorer(EASE_SMALL, split)
    assert [t.params for t in result.trials] == [{"l2": 1.0}, {"l2": 10.0}]
    best = max(result.trials, key=lambda t: t.score)
    assert result.hyperparameters == best.params
    for key in ("ndcg@10", "recall@1", "recall@50", "mrr@20", "precision@5", "coverage@10", "novelty@10", "gini@10"):
        assert key in result.metrics
    assert result.metrics["recall@10"] > 0.5  # the clusters make this easy
    assert result.fit_seconds >= 0 and result.score_seconds >= 0


def test_without_search_a_model_runs_with_its_defaults(seq: SequenceData):
    result = evaluate_scorer(EASE_SMALL, loo_split(seq), do_search=False)
    assert result.hyperparameters == {"l2": 500.0} and result.trials == ()


def test_two_runs_give_identical_numbers(seq: SequenceData):
    split = loo_split(seq)
    spec = ScorerSpec("bpr", scorer_spec("bpr").factory, {"learning_rate": [0.01, 0.05]}, "BPR",
                      {"factors": 8, "epochs": 5, "batch_size": 64})  # fmt: skip
    first, second = evaluate_scorer(spec, split), evaluate_scorer(spec, split)
    assert first.metrics == second.metrics
    assert [t.score for t in first.trials] == [t.score for t in second.trials]


def test_a_failing_model_is_recorded_and_others_finish(seq: SequenceData):
    split = loo_split(seq)
    report = evaluate_models(split, ["pop", BROKEN, EASE_SMALL], dataset="toy", stats=_stats(seq))
    assert set(report.results) == {"pop", "ease"}
    assert report.errors == {"broken": "RuntimeError: this model always fails"}
    data = report.to_dict()
    assert data["errors"]["broken"].startswith("RuntimeError")
    assert data["split"] == {"users": N_USERS, "items": N_ITEMS, "interactions": N_USERS * LENGTH}
    assert "broken" in report.to_markdown()


def test_a_failing_grid_point_does_not_end_the_search(seq: SequenceData):
    spec = ScorerSpec("ease", scorer_spec("ease").factory, {"l2": [-1.0, 10.0]}, "EASE")
    result = evaluate_scorer(spec, loo_split(seq))
    assert result.trials[0].error is not None and "l2 must be > 0" in result.trials[0].error
    assert result.hyperparameters == {"l2": 10.0}


def test_sampled_protocol_is_labelled_everywhere(seq: SequenceData, tmp_path: Path):
    split = make_split("loo-sampled100", seq)
    report = evaluate_models(split, ["pop"], dataset="toy", stats=_stats(seq), search=False)
    assert report.to_dict()["protocol"] == "loo-sampled100"
    assert "SAMPLED" in report.to_dict()["protocol_description"]
    markdown = report.to_markdown()
    assert "loo-sampled100" in markdown.splitlines()[0] and "SAMPLED" in markdown
    paths = report.save(tmp_path)
    assert json.loads(paths["json"].read_text())["protocol"] == "loo-sampled100"
    assert paths["plot"].stat().st_size > 1000 and paths["plot"].read_bytes()[:4] == b"\x89PNG"
    assert paths["markdown"].read_text().startswith("**toy")


def test_report_json_shape(seq: SequenceData):
    split = loo_split(seq)
    context = EvalContext.for_split(split, embeddings=np.eye(N_ITEMS))
    report = evaluate_models(split, ["pop", EASE_SMALL], dataset="toy", stats=_stats(seq), context=context)
    data = report.to_dict()
    assert data["dataset"] == "toy" and data["protocol"] == "loo" and data["errors"] == {}
    ease = data["results"]["ease"]
    for key in ("ndcg@10", "recall@10", "coverage@10", "diversity@10", "novelty@10", "gini@10"):
        assert isinstance(ease[key], float)
    assert isinstance(ease["fit_seconds"], float) and isinstance(ease["score_seconds"], float)
    assert set(ease["hyperparameters"]) == {"l2"}
    json.dumps(data)  # serialisable


def test_grid_is_the_cartesian_product_in_order():
    assert grid({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    assert grid({}) == [{}]


def test_run_evaluation_rejects_unknown_names_before_loading_data():
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        run_evaluation("no-such-dataset", ["pop", "nope"])
    with pytest.raises(ConfigError, match="unknown protocol"):
        run_evaluation("no-such-dataset", ["pop"], protocol="random")
    with pytest.raises(ConfigError, match="no models"):
        run_evaluation("no-such-dataset", [])


class PopThenEase:
    """A toy pipeline: MostPop retrieves ``n_candidates`` unseen items, EASE re-ranks them."""

    name = "pop>ease"

    def __init__(self, n_candidates: int = 6, cheat: bool = False) -> None:
        self.n_candidates, self.cheat = n_candidates, cheat

    def fit(self, train: TrainData) -> PopThenEase:
        self.retriever = get_scorer("pop").fit(train)
        self.ranker = get_scorer("ease", l2=1.0).fit(train)
        return self

    def recommend(self, users: np.ndarray, histories: Sequence[np.ndarray], n: int) -> PipelineOutput:
        candidates = self.retriever.recommend(users, histories, self.n_candidates)
        scores = self.ranker.score(users, histories)
        ranked = np.full((len(users), n), -1, dtype=np.int64)
        for row, cands in enumerate(candidates):
            cands = cands[cands >= 0]
            order = cands[np.argsort(-scores[row, cands], kind="stable")][:n]
            ranked[row, : len(order)] = order
        if self.cheat:  # an item that was never a candidate
            ranked[0, 0] = next(i for i in range(N_ITEMS) if i not in set(candidates[0].tolist()))
        return PipelineOutput(ranked, candidates)

    def hyperparameters(self) -> dict:
        return {"n_candidates": self.n_candidates}


def test_pipeline_reports_the_retriever_ceiling(seq: SequenceData):
    split = loo_split(seq)
    result = evaluate_pipeline(PopThenEase(), split)
    ceiling = result.retriever
    assert ceiling is not None and ceiling["n_candidates"] == 6
    assert set(ceiling) == {"n_candidates", "recall@1", "recall@5", "recall@6"}
    # a re-ranker can only reorder the candidates: its recall at the candidate count equals the ceiling
    assert result.metrics["recall@50"] == pytest.approx(ceiling["recall@6"])
    assert result.metrics["recall@5"] <= ceiling["recall@6"]
    assert result.hyperparameters == {"n_candidates": 6}
    assert "retriever" in result.to_dict() and result.n_users == N_USERS
    subset = evaluate_pipeline(PopThenEase(), split, max_users=10, seed=1)
    assert subset.n_users == 10 and subset.to_dict()["users"] == 10


def test_pipeline_may_not_invent_candidates(seq: SequenceData):
    with pytest.raises(LlmrecError, match="not candidates"):
        evaluate_pipeline(PopThenEase(cheat=True), loo_split(seq))
    with pytest.raises(ConfigError, match="full-ranking"):
        evaluate_pipeline(PopThenEase(), make_split("loo-sampled100", seq))


@pytest.mark.slow
def test_real_ml_latest_small_reproduces_the_reference(shared_data: Path, tmp_path: Path):
    """pop and EASE on ml-latest-small: the reference table's figures to the fourth decimal."""
    report = run_evaluation("ml-latest-small", ["pop", "ease"], data_dir=shared_data, cache_dir=tmp_path)
    results = report.to_dict()["results"]
    assert report.split == {"users": 610, "items": 3650, "interactions": 90274}
    assert results["pop"]["ndcg@10"] == pytest.approx(0.0176, abs=5e-5)
    assert results["pop"]["recall@10"] == pytest.approx(0.0393, abs=5e-5)
    assert results["pop"]["recall@50"] == pytest.approx(0.1115, abs=5e-5)
    assert results["ease"]["hyperparameters"] == {"l2": 50.0}
    assert results["ease"]["ndcg@10"] == pytest.approx(0.0338, abs=5e-5)
    assert results["ease"]["recall@20"] == pytest.approx(0.1361, abs=5e-5)
    assert results["ease"]["recall@50"] == pytest.approx(0.2459, abs=5e-5)
