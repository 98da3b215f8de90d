"""The retriever -> LLM ranker pipeline in the harness, with a fake LLM on real data."""

from __future__ import annotations

import numpy as np
import pytest

from llmrec.data import load_dataset, preprocess
from llmrec.evaluation.harness import EvalContext, evaluate_pipeline
from llmrec.evaluation.protocols import make_split
from llmrec.evaluation.rerank import RerankPipeline
from llmrec.llm.base import FakeLLM
from llmrec.ranking import LABELS, LLMRanker


@pytest.fixture(scope="module")
def setup():
    data = load_dataset("ml-100k")
    seq = preprocess(data)
    split = make_split("loo", seq, 0)
    return data, seq, split


def _run(setup, scorer=None):
    data, seq, split = setup
    factory = None
    if scorer is not None:
        factory = lambda: LLMRanker(FakeLLM(scorer=scorer), data.items)  # noqa: E731
    pipeline = RerankPipeline("pop", factory, seq.item_ids, data.items, seq.ratings, n_candidates=20)
    return evaluate_pipeline(pipeline, split, context=EvalContext.for_split(split), max_users=40, seed=0), pipeline


def test_llm_that_keeps_the_order_reproduces_the_retriever(setup):
    alone, _ = _run(setup)
    same, pipeline = _run(setup, scorer=lambda m, options: [-i for i in range(len(options))])
    assert pipeline.fallbacks == 0
    for key in ("ndcg@10", "recall@10", "recall@20"):
        assert same.metrics[key] == pytest.approx(alone.metrics[key])
    assert same.retriever["recall@20"] == pytest.approx(alone.metrics["recall@20"])  # the ceiling
    assert same.metrics["recall@50"] == pytest.approx(same.metrics["recall@20"])  # nothing beyond the candidates


def test_reversing_the_candidates_changes_ndcg_but_not_the_ceiling(setup):
    alone, _ = _run(setup)
    reversed_, _ = _run(setup, scorer=lambda m, options: list(range(len(options))))
    assert reversed_.metrics["recall@20"] == pytest.approx(alone.metrics["recall@20"])
    if alone.metrics["recall@20"] > 0:
        assert reversed_.metrics["ndcg@20"] != pytest.approx(alone.metrics["ndcg@20"])
    assert len(LABELS) == 20 and np.isfinite(reversed_.metrics["ndcg@10"])


def test_skipping_users_whose_target_was_missed_changes_no_accuracy_figure(setup):
    data, seq, split = setup
    scorer = lambda m, options: list(range(len(options)))  # noqa: E731  (reverses every list it ranks)
    full, _ = _run(setup, scorer=scorer)
    pipeline = RerankPipeline("pop", lambda: LLMRanker(FakeLLM(scorer=scorer), data.items), seq.item_ids, data.items,
                              seq.ratings, n_candidates=20)  # fmt: skip
    pipeline.targets = {int(u): frozenset(t.tolist()) for u, t in zip(split.test.users, split.test.targets)}
    skipped = evaluate_pipeline(pipeline, split, context=EvalContext.for_split(split), max_users=40, seed=0)
    assert 0 < pipeline.llm_users < 40  # only the users with their item among the candidates cost a prompt
    for key in ("ndcg@10", "recall@10", "ndcg@20", "mrr@20"):
        assert skipped.metrics[key] == pytest.approx(full.metrics[key])


def test_the_llm_ranker_orders_by_the_shipped_fusion_model_and_the_blends_follow(setup, tmp_path, monkeypatch):
    from llmrec import fusion
    from llmrec.config import RecommenderConfig
    from llmrec.evaluation.rerank import rerank_variants, run_rerank_evaluation

    card = {"name": "fusion-ml-100k-pop.json", "dataset": "ml-100k", "min_count": 5, "retriever":
            fusion.retriever_identity("pop"), "n_candidates": 20, "llm": "FakeLLM:fake:-:rank-adapter=none",
            "adapter": "none", "prompt": "rank@1"}  # fmt: skip
    names = ("llm", "retrieval_rr")
    model = fusion.FusionModel("logistic", names, (0.0, 0.0), (1.0, 1.0), (1.0, 0.5), 0.0, card=card)
    model.save(tmp_path / "fusion-ml-100k-pop.json")
    monkeypatch.setattr(fusion, "fusion_file", lambda model, dataset, retriever: tmp_path / f"fusion-{dataset}-"
                        f"{retriever}.json")  # fmt: skip
    config = RecommenderConfig().updated(data={"dataset": "ml-100k"}, llm={"backend": "fake"},
                                         ranker={"kind": "llm"}, cache_dir=str(tmp_path))  # fmt: skip
    report = run_rerank_evaluation(config, "pop", rerank_variants(config), max_users=30)
    assert not report.errors, report.errors
    assert list(report.results)[:3] == ["pop", "pop+llm:qwen2.5-coder-0.5b-instruct",
                                        "pop+llm:qwen2.5-coder-0.5b-instruct+zero-shot"]  # fmt: skip
    assert "fusion-ml-100k-pop.json" in report.notes["fused order"]
    row, alone = report.results["pop+llm:qwen2.5-coder-0.5b-instruct"], report.results["pop"]
    assert row.metrics["recall@20"] == pytest.approx(alone.metrics["recall@20"])  # a reordering of the same 20
    assert "pop+llm:qwen2.5-coder-0.5b-instruct blend" not in report.notes  # the fused order has no blend
    assert "pop+llm:qwen2.5-coder-0.5b-instruct+zero-shot blend" in report.notes  # the variants blend
    assert (tmp_path / "scores" / "label-scores.sqlite").is_file()  # label scores kept for the next run
    every = run_rerank_evaluation(config, "pop", {})  # all users: the note compares the run with the card's test
    assert every.notes["fused order"].endswith("its card holds the validation and test figures")  # it has none
    got = every.results["pop+llm:qwen2.5-coder-0.5b-instruct"].metrics
    model.card["test"] = {key: got[key] for key in ("ndcg@10", "recall@10", "recall@20")}
    model.save(tmp_path / "fusion-ml-100k-pop.json")
    assert run_rerank_evaluation(config, "pop", {}).notes["fused order"].endswith("(this run: the same)")
    without = run_rerank_evaluation(config, "pop", max_users=30, include_fused=False)
    assert "fused order" not in without.notes and "pop+llm:qwen2.5-coder-0.5b-instruct blend" in without.notes
    fusion.FusionModel("logistic", names, (0.0, 0.0), (1.0, 1.0), (1.0, 0.5), 0.0, card={**card, "min_count": 3}).save(
        tmp_path / "fusion-ml-100k-pop.json")  # fitted on another k-core: the row blends and the note says so
    misfit = run_rerank_evaluation(config, "pop", {}, max_users=5)
    assert "does not fit" in misfit.notes["fused order"] and "pop+llm:qwen2.5-coder-0.5b-instruct blend" in misfit.notes
    forced = config.updated(ranker={"blend": 0.5})  # a blend asked for: the blend, not the fusion model
    assert "fused order" not in run_rerank_evaluation(forced, "pop", max_users=5).notes
