"""llmrec.fusion: features, the fitted model and its card, the on-disk label-score cache, the fused ranker, and the
fused ranker inside the evaluation pipeline (fake LLM, real ml-100k)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmrec.errors import DataError, ModelError
from llmrec.fusion import (
    FEATURES,
    CachedLLM,
    FeatureContext,
    FusedRanker,
    FusionModel,
    LabelScoreCache,
    candidate_features,
    card_llm_ranker,
    fit_fusion,
    llm_identity,
)
from llmrec.llm.base import FakeLLM
from llmrec.ranking import LLMRanker
from llmrec.types import Candidate, HistoryEntry, Item, UserProfile

ITEMS = {
    "1": Item("1", "Alien", 1979, ("Horror", "Sci-Fi")),
    "2": Item("2", "Aliens", 1986, ("Action", "Sci-Fi")),
    "3": Item("3", "Heat", 1995, ("Crime",)),
    "4": Item("4", "Up", 2009, ("Animation", "Comedy")),
    "5": Item("5", "Brazil", 1985, ("Sci-Fi", "Comedy")),
    "6": Item("6", "Fargo", 1996, ("Crime", "Comedy")),
}
POPULARITY = {"1": 9, "2": 3, "3": 0, "4": 20, "5": 1, "6": 5}
# Text vectors (not unit length: the features normalise them); item 3 has none.
VECTORS = {"1": np.array([2.0, 0.0, 0.0]), "2": np.array([1.0, 1.0, 0.0]), "4": np.array([0.0, 0.0, 3.0]),
           "5": np.array([0.0, 1.0, 0.0]), "6": np.array([-1.0, 0.0, 0.0])}  # fmt: skip


def window(ids=("2", "3", "4", "5", "6"), scores=(5.0, 4.0, 3.0, 2.0, 1.0)) -> list[Candidate]:
    return [Candidate(i, s, ("sasrec",)) for i, s in zip(ids, scores)]


def profile(history=("1",)) -> UserProfile:
    return UserProfile(user_id="7", history=tuple(HistoryEntry(i, 4.0) for i in history))


def logistic(names, coef, card=None) -> FusionModel:
    n = len(names)
    return FusionModel("logistic", tuple(names), (0.0,) * n, (1.0,) * n, tuple(coef), 0.0, card=card or {})


# Features -----------------------------------------------------------------------------------------
def test_features_by_hand():
    context = FeatureContext(ITEMS, POPULARITY, max_history=20, vectors=VECTORS)
    llm = np.log(np.array([0.1, 0.5, 0.2, 0.15, 0.05]))
    reversed_ = np.log(np.array([0.3, 0.3, 0.2, 0.1, 0.1]))
    x = candidate_features(window(), ["1"], llm, context, llm_reversed=reversed_)
    col = {name: x[:, FEATURES.index(name)] for name in FEATURES}
    np.testing.assert_allclose(col["llm"], llm)
    np.testing.assert_allclose(col["llm_rr"], [1 / 4, 1, 1 / 2, 1 / 3, 1 / 5])  # ranks 4, 1, 2, 3, 5
    np.testing.assert_allclose(col["llm_rev"], reversed_)
    np.testing.assert_allclose(col["retrieval_rr"], [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    np.testing.assert_allclose(col["retrieval_rrf60"], np.log(1 / np.arange(61, 66)))
    np.testing.assert_allclose(np.exp(col["retrieval_logit"]).sum(), 1.0)  # a log-softmax of the scores
    np.testing.assert_allclose(col["popularity"], np.log1p([3, 0, 20, 1, 5]))
    # Alien's genres {Horror, Sci-Fi}: Aliens shares one of two (cos = 1 / (sqrt 2 * sqrt 2)), Heat none
    np.testing.assert_allclose(col["genre_sim"], [0.5, 0.0, 0.0, 0.5, 0.0])
    np.testing.assert_allclose(col["year_gap"], [0.7, 1.6, 3.0, 0.6, 1.7])
    # one history item (Alien, along x): both text features are the cosine to it; Heat has no vector
    np.testing.assert_allclose(col["text_sim"], [1 / np.sqrt(2), 0.0, 0.0, 0.0, -1.0])
    np.testing.assert_allclose(col["text_last"], col["text_sim"])


def test_text_similarity_to_the_recent_mean_and_to_the_last_item():
    context = FeatureContext(ITEMS, POPULARITY, max_history=2, vectors=VECTORS)
    # history oldest first; max_history 2 keeps Up and Brazil (Alien drops out; Heat would have no vector)
    x = candidate_features(window(("1", "2", "6")), ["1", "4", "5"], None, context, names=("text_sim", "text_last"))
    profile_ = np.array([0.0, 1.0, 1.0]) / np.sqrt(2)  # mean of the unit vectors of Up (z) and Brazil (y)
    np.testing.assert_allclose(x[:, 0], [0.0, (1 / np.sqrt(2)) * profile_[1], 0.0])
    np.testing.assert_allclose(x[:, 1], [0.0, 1 / np.sqrt(2), 0.0])  # against Brazil only
    unknown_history = candidate_features(window(), ["3"], None, context, names=("text_sim", "text_last"))
    assert not unknown_history.any()  # no history vector: zeros, not NaN
    with pytest.raises(ModelError, match="text vectors"):
        candidate_features(window(), ["1"], None, FeatureContext(ITEMS, POPULARITY), names=("text_sim",))


def test_features_for_a_user_with_one_or_no_item_and_missing_llm_scores():
    context = FeatureContext(ITEMS, POPULARITY)
    no_history = candidate_features(window(), [], None, context, names=("genre_sim", "year_gap", "retrieval_rr"))
    assert np.isfinite(no_history).all() and not no_history[:, :2].any()
    with pytest.raises(ModelError, match="label scores"):
        candidate_features(window(), ["1"], None, context)


# The model and its card ---------------------------------------------------------------------------
def test_the_old_blend_is_a_special_case_of_the_logistic_model():
    logits = np.array([0.3, 2.0, -1.0, 0.5, 1.7])
    ranker = LLMRanker(FakeLLM(scorer=lambda _m, options: logits[: len(options)]), ITEMS, blend=0.9)
    expected = [c.item_id for c in ranker.rank(profile(), window(), 5)]
    model = logistic(("llm", "retrieval_rrf60"), (0.1, 0.9))
    llm_ranker = LLMRanker(FakeLLM(scorer=lambda _m, o: logits), ITEMS)
    fused = FusedRanker(model, FeatureContext(ITEMS, POPULARITY), llm_ranker)
    assert [c.item_id for c in fused.rank(profile(), window(), 5)] == expected


@pytest.mark.parametrize("kind", ["logistic", "lambdarank"])
def test_a_fitted_model_finds_a_planted_signal_and_round_trips_through_json(tmp_path, kind):
    rng = np.random.default_rng(0)
    names = ("llm", "retrieval_rr", "popularity")
    features, labels = [], []
    for _ in range(120):
        x = rng.normal(size=(20, 3))
        y = np.zeros(20, dtype=np.int64)
        y[int(np.argmax(x[:, 0] + 0.3 * rng.normal(size=20)))] = 1  # the first feature predicts the target
        features.append(x)
        labels.append(y)
    model = fit_fusion(features, labels, names, kind, 1.0 if kind == "logistic" else 100)
    top1 = np.mean([np.argmax(model.score(x)) == np.argmax(y) for x, y in zip(features, labels)])
    assert top1 > 0.5  # chance is 0.05
    path = model.save(tmp_path / "fusion.json")
    again = FusionModel.load(path)
    np.testing.assert_allclose(again.score(features[0]), model.score(features[0]))
    assert "pickle" not in path.read_text()


def test_a_model_refuses_other_data_split_retriever_or_llm_in_one_line(tmp_path):
    card = {"name": "fusion-ml-latest-small-sasrec.json", "dataset": "ml-latest-small", "protocol": "loo",
            "retriever": {"name": "sasrec", "hyperparameters": {"hidden": 64}}, "llm": "TransformersLLM:q:float32"}
    model = logistic(("retrieval_rr",), (1.0,), card)
    same = {"name": "sasrec", "hyperparameters": {"hidden": 64}}
    model.check(dataset="ml-latest-small", protocol="loo", retriever=same, llm=None)  # None: not checked
    for key, value in (("dataset", "ml-100k"), ("protocol", "temporal"), ("llm", "FakeLLM:fake:-"),
                       ("retriever", {"name": "ease", "hyperparameters": {"l2": 50.0}})):  # fmt: skip
        with pytest.raises(ModelError, match=f"fitted for {key}") as error:
            model.check(**{key: value})
        assert "\n" not in str(error.value) and "ranking.py fusion" in str(error.value)


def test_malformed_or_missing_model_files_are_one_line_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        FusionModel.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": 1, "kind": "logistic", "features": ["llm"], "mean": [], "scale": [],
                               "coef": [], "intercept": 0}))  # fmt: skip
    with pytest.raises(ModelError, match="do not match"):
        FusionModel.load(bad)
    with pytest.raises(ModelError, match="unknown features"):
        logistic(("mood",), (1.0,))


# The label-score cache ----------------------------------------------------------------------------
def test_label_scores_are_computed_once_per_model_identity_and_prompt(tmp_path):
    fake = FakeLLM()
    cache = LabelScoreCache(tmp_path / "scores.sqlite")
    llm = CachedLLM(fake, cache)
    messages = [{"role": "user", "content": "pick"}]
    first = llm.score_options(messages, list("ABC"))
    again = llm.score_options(messages, list("ABC"))
    np.testing.assert_array_equal(first, again)
    assert (llm.hits, llm.misses, len(fake.prompts)) == (1, 1, 1)
    other = CachedLLM(fake, LabelScoreCache(tmp_path / "scores.sqlite"), identity="another-adapter")
    other.score_options(messages, list("ABC"))
    assert other.misses == 1 and len(cache) == 2 and len(fake.prompts) == 2  # another model: scored again
    assert llm_identity(fake) == "FakeLLM:fake:-:rank-adapter=none"
    assert llm.count_tokens(messages) == fake.count_tokens(messages)  # everything else is delegated


def test_label_scores_of_one_runtime_precision_are_never_read_back_as_anothers(tmp_path):
    messages = [{"role": "user", "content": "pick"}]
    bf16, f32 = FakeLLM(), FakeLLM()
    bf16.precision, f32.precision = "bf16", "f32"  # what OpenVINOLLM reports after compiling
    first = CachedLLM(bf16, LabelScoreCache(tmp_path / "scores.sqlite"))
    first.score_options(messages, list("ABC"))
    second = CachedLLM(f32, LabelScoreCache(tmp_path / "scores.sqlite"))
    second.score_options(messages, list("ABC"))
    assert first.identity == second.identity  # the card's identity names the model, not the precision
    assert second.misses == 1 and len(f32.prompts) == 1  # but the f32 model scored its own


# The fused ranker ---------------------------------------------------------------------------------
def test_the_llm_ranker_of_a_card_asks_with_its_prompt_labels_and_history_length():
    llm = FakeLLM()
    ranker = card_llm_ranker(logistic(("llm",), (1.0,), card={"prompt": "rank@1", "labels": "VWXYZ",
                                                                  "max_history": 1}), llm, ITEMS, 20)  # fmt: skip
    assert (ranker.prompt.ref, ranker.labels, ranker.max_history) == ("rank@1", "VWXYZ", 1)
    text = "\n".join(m["content"] for m in ranker.messages(profile(("1", "4")), window(("2", "3"), (2.0, 1.0))))
    assert "V. Aliens (1986)" in text and "W. Heat (1995)" in text  # the card's labels
    assert "- Up (2009)" in text and "Alien (1979)" not in text  # one history item: the last
    default = card_llm_ranker(logistic(("llm",), (1.0,)), llm, ITEMS, 7)
    assert (default.prompt.ref, default.labels[:3], default.max_history) == ("rank@1", "ABC", 7)
    latest = card_llm_ranker(logistic(("llm",), (1.0,), card={"prompt": "rank@2"}), llm, ITEMS, 7)
    assert latest.prompt.ref == "rank@2"


def test_ties_keep_the_retrieval_order_and_the_result_is_a_reordering():
    model = logistic(("popularity",), (0.0,))  # every candidate scores the same
    ranker = FusedRanker(model, FeatureContext(ITEMS, POPULARITY))
    assert [c.item_id for c in ranker.rank(profile(), window(), 5)] == ["2", "3", "4", "5", "6"]
    by_popularity = FusedRanker(logistic(("popularity",), (1.0,)), FeatureContext(ITEMS, POPULARITY))
    ranked = by_popularity.rank(profile(), window(), 3)
    assert [c.item_id for c in ranked] == ["4", "6", "2"] and ranked[0].evidence.stage_scores[-1][0] == "fused"


def test_the_reversed_window_feature_asks_again_last_candidate_first_and_maps_scores_back():
    first_letter = FakeLLM(scorer=lambda _m, options: -np.arange(len(options), dtype=float))  # always leans to "A"
    llm_ranker = LLMRanker(first_letter, ITEMS)
    forward = FusedRanker(logistic(("llm",), (1.0,)), FeatureContext(ITEMS, POPULARITY), llm_ranker)
    backward = FusedRanker(logistic(("llm_rev",), (1.0,)), FeatureContext(ITEMS, POPULARITY), llm_ranker)
    assert [c.item_id for c in forward.rank(profile(), window(), 5)] == ["2", "3", "4", "5", "6"]
    assert len(first_letter.prompts) == 1
    # shown last candidate first, "A" is Fargo: mapped back, the reversed scores put the window's last item on top
    assert [c.item_id for c in backward.rank(profile(), window(), 5)] == ["6", "5", "4", "3", "2"]
    shown = str(first_letter.prompts[-1])
    assert len(first_letter.prompts) == 2 and shown.index("Fargo") < shown.index("Aliens")
    both = FusedRanker(logistic(("llm", "llm_rev"), (1.0, 1.0)), FeatureContext(ITEMS, POPULARITY), llm_ranker)
    both.rank(profile(), window(), 5)
    assert len(first_letter.prompts) == 4  # one prompt per order


def test_short_windows_are_named_and_a_failing_llm_falls_back_to_retrieval_order():
    model = logistic(("llm", "retrieval_rr"), (1.0, 1.0), {"n_candidates": 20})
    ranker = FusedRanker(model, FeatureContext(ITEMS, POPULARITY), LLMRanker(FakeLLM(), ITEMS))
    assert len(ranker.rank(profile(), window(), 5)) == 5
    assert "5 candidates" in ranker.last_note and "fitted on 20" in ranker.last_note
    failing = FusedRanker(model, FeatureContext(ITEMS, POPULARITY), LLMRanker(FakeLLM(fail=True), ITEMS))
    assert [c.item_id for c in failing.rank(profile(), window(), 5)] == ["2", "3", "4", "5", "6"]
    assert "retrieval order" in failing.last_note
    with pytest.raises(ModelError, match="LLM ranker"):
        FusedRanker(model, FeatureContext(ITEMS, POPULARITY))


# In the evaluation pipeline -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ml100k():
    from llmrec.data import load_dataset, preprocess
    from llmrec.evaluation.protocols import make_split

    data = load_dataset("ml-100k")
    seq = preprocess(data)
    return data, seq, make_split("loo", seq, 0)


def test_the_fused_ranker_in_the_evaluation_gets_the_fit_datas_popularity(ml100k):
    from llmrec.evaluation.harness import EvalContext, evaluate_pipeline
    from llmrec.evaluation.rerank import RerankPipeline

    data, seq, split = ml100k
    made: list[FusedRanker] = []

    def factory() -> FusedRanker:
        made.append(FusedRanker(logistic(("popularity",), (-1.0,)), FeatureContext(data.items, {})))
        return made[-1]

    pipeline = RerankPipeline("pop", factory, seq.item_ids, data.items, seq.ratings, n_candidates=20)
    result = evaluate_pipeline(pipeline, split, context=EvalContext.for_split(split), max_users=30, seed=0)
    counts = split.final_train.item_counts
    assert made[0].context.popularity == {seq.item_ids[i]: int(c) for i, c in enumerate(counts) if c}
    assert result.metrics["recall@20"] == pytest.approx(result.retriever["recall@20"])  # a reordering only
    assert pipeline.fallbacks == 0


def test_a_retriever_with_fewer_candidates_than_the_ranker_needs_is_refused(ml100k):
    from llmrec.evaluation.rerank import RerankPipeline

    data, seq, split = ml100k
    ranker = FusedRanker(logistic(("popularity",), (1.0,)), FeatureContext(data.items, {}))
    pipeline = RerankPipeline("pop", lambda: ranker, seq.item_ids, data.items, seq.ratings, n_candidates=seq.n_items)
    pipeline.fit(split.final_train)
    with pytest.raises(DataError, match="fewer than") as error:
        pipeline.recommend(split.test.users[:2], split.test.histories[:2], 10)
    assert "\n" not in str(error.value)


# The pipeline's builder ('fused' ranker kind) -------------------------------------------------------
def shipped_like(tmp_path, owner, retriever="ease", dataset="toy", llm_identity_value=None, name="fusion") -> Path:
    from llmrec.fusion import CachedLLM, LabelScoreCache, retriever_identity

    card = {"name": "fusion-toy-ease.json", "dataset": dataset, "min_count": 3, "protocol": "loo",
            "retriever": retriever_identity(retriever), "n_candidates": 20, "prompt": "rank@1",
            "llm": llm_identity_value or CachedLLM(owner.llm, LabelScoreCache(tmp_path / "s.sqlite")).identity}
    return logistic(("llm", "retrieval_rr", "popularity"), (1.0, 2.0, 0.1), card).save(tmp_path / f"{name}.json")


def test_the_fused_kind_ranks_through_the_recommender_and_caches_label_scores(tmp_path):
    from fixtures_catalog import fake_recommender
    from llmrec.fusion import build_fused_ranker

    owner = fake_recommender(retrieval={"retriever": "cf", "cf_model": "ease", "candidates": 5},
                             cache_dir=str(tmp_path))  # fmt: skip
    path = shipped_like(tmp_path, owner)
    ranker = build_fused_ranker(owner.config, owner, path)
    profile_ = owner.profile(user="u1")
    window_ = [Candidate(i, 1.0 - n / 10, ("cf",)) for n, i in enumerate(["9", "10", "11", "12", "13"])]
    first = ranker.rank(profile_, window_, 5)
    assert sorted(c.item_id for c in first) == sorted(c.item_id for c in window_)
    calls = len(owner.llm.prompts)
    again = ranker.rank(profile_, window_, 5)
    assert [c.item_id for c in again] == [c.item_id for c in first] and len(owner.llm.prompts) == calls  # cached
    assert (tmp_path / "scores" / "label-scores.sqlite").is_file()


def test_the_fused_kind_refuses_another_retriever_data_set_or_model_in_one_line(tmp_path):
    from fixtures_catalog import fake_recommender
    from llmrec.fusion import build_fused_ranker

    owner = fake_recommender(retrieval={"retriever": "cf", "cf_model": "ease"}, cache_dir=str(tmp_path))
    hybrid = fake_recommender(cache_dir=str(tmp_path))  # the default hybrid retrieval
    cases = [
        (hybrid, shipped_like(tmp_path, owner), "retriever"),
        (owner, shipped_like(tmp_path, owner, dataset="ml-100k", name="other-data"), "dataset"),
        (owner, shipped_like(tmp_path, owner, llm_identity_value="TransformersLLM:qwen:bfloat16:rank-adapter=none",
                             name="other-llm"), "llm"),
    ]
    for recommender, path, key in cases:
        with pytest.raises(ModelError, match=f"fitted for {key}") as error:
            build_fused_ranker(recommender.config, recommender, path)
        assert "\n" not in str(error.value)
    with pytest.raises(ModelError, match="is missing"):
        build_fused_ranker(owner.config, owner)  # nothing ships for the toy data set


def test_the_fused_kind_runs_the_model_in_the_cards_precision_and_refuses_another(tmp_path, monkeypatch):
    from fixtures_catalog import fake_recommender
    from llmrec.fusion import build_fused_ranker

    owner = fake_recommender(retrieval={"retriever": "cf", "cf_model": "ease", "candidates": 5},
                             llm_section={"backend": "fake"}, cache_dir=str(tmp_path))  # fmt: skip
    path = shipped_like(tmp_path, owner)
    model = FusionModel.load(path)
    model.card["precision"] = "f32"
    model.save(path)
    ranker = build_fused_ranker(owner.config, owner, path)
    assert owner.config.llm.precision == "auto"
    assert ranker.llm_ranker.llm.inner is not owner.llm  # a variant of the owner, built with the card's precision
    assert ranker.llm_ranker.llm.inner is owner.variant(llm={"precision": "f32"}).llm  # (one model per setting)
    monkeypatch.setattr(FakeLLM, "precision", "bf16", raising=False)  # a runtime that did not honour it
    with pytest.raises(ModelError, match="fitted for precision 'f32', not 'bf16'") as error:
        build_fused_ranker(owner.config, fake_recommender(
            retrieval={"retriever": "cf", "cf_model": "ease", "candidates": 5}, llm_section={"backend": "fake"},
            cache_dir=str(tmp_path)), path)  # fmt: skip
    assert "\n" not in str(error.value)


def test_a_fusion_model_with_text_features_reads_the_owners_vector_store_and_checks_its_embedder(tmp_path):
    from fixtures_catalog import fake_recommender
    from llmrec.fusion import build_fused_ranker, embedder_identity, retriever_identity

    owner = fake_recommender(retrieval={"retriever": "cf", "cf_model": "ease"}, cache_dir=str(tmp_path))
    card = {"name": "fusion-text.json", "dataset": "toy", "min_count": 3, "retriever": retriever_identity("ease"),
            "n_candidates": 20, "embedder": embedder_identity(owner.embedder)}  # fmt: skip
    path = logistic(("text_last",), (1.0,), card).save(tmp_path / "text.json")
    ranker = build_fused_ranker(owner.config, owner, path)
    assert set(ranker.context.vectors) == set(owner.items)  # the store's vectors, one per catalogue item
    liked, *others = list(owner.items)
    profile_ = UserProfile(user_id="new", history=(HistoryEntry(liked, 5.0),))
    ids = others[:6]
    ranked = ranker.rank(profile_, [Candidate(i, 0.0, ("cf",)) for i in ids], 6)
    unit = {i: v / np.linalg.norm(v) for i, v in ranker.context.vectors.items()}
    expected = sorted(ids, key=lambda i: -float(unit[i] @ unit[liked]))  # most similar text to the liked item first
    assert [c.item_id for c in ranked] == expected
    other = {**card, "embedder": {"name": "all-minilm-l6-v2", "fingerprint": "0" * 64}}
    path = logistic(("text_last",), (1.0,), other).save(tmp_path / "other.json")
    with pytest.raises(ModelError, match="fitted for embedder") as error:
        build_fused_ranker(owner.config, owner, path)
    assert "\n" not in str(error.value)


def test_the_llm_kind_orders_by_a_shipped_fusion_model_over_its_retriever_else_blends(tmp_path, monkeypatch, caplog):
    from fixtures_catalog import fake_recommender
    from llmrec import fusion
    from llmrec.fusion import FusedRanker
    from llmrec.ranking import LLMRanker

    monkeypatch.setattr(fusion, "fusion_file", lambda model, dataset, retriever: tmp_path / f"fusion-{dataset}-"
                        f"{retriever}.json")  # fmt: skip
    cf = {"retrieval": {"retriever": "cf", "cf_model": "ease"}, "llm_section": {"use_default_adapter": False},
          "cache_dir": str(tmp_path)}  # fmt: skip
    owner = fake_recommender(**cf)
    assert isinstance(owner.ranker, LLMRanker)  # nothing ships yet
    shipped_like(tmp_path, owner, name="fusion-toy-ease")
    fused = fake_recommender(**cf)
    assert isinstance(fused.ranker, FusedRanker)
    recs = fused.recommend(fused.profile(user="u1"), k=3)
    assert recs.items and recs.ranker == "fused"  # the live road: recommend runs the fused order
    others = {"hybrid retrieval": fake_recommender(llm_section={"use_default_adapter": False}, cache_dir=str(tmp_path)),
              "a blend asked for": fake_recommender(**{**cf, "ranker": {"kind": "llm", "blend": 0.5}}),
              "fusion off": fake_recommender(**{**cf, "ranker": {"kind": "llm", "fusion": False}})}
    for why, recommender in others.items():
        assert isinstance(recommender.ranker, LLMRanker), why
    shipped_like(tmp_path, owner, dataset="ml-100k", name="fusion-toy-ease")  # fitted for another data set
    with caplog.at_level("WARNING"):
        assert isinstance(fake_recommender(**cf).ranker, LLMRanker)
    assert "fitted for dataset" in caplog.text


SMALL, LARGE = "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"


@pytest.mark.parametrize(("llm", "dataset", "retriever", "users"),
                         [(SMALL, "ml-latest-small", "sasrec", 610), (SMALL, "ml-latest-small", "ensemble", 610),
                          (SMALL, "ml-latest-small", "ensemble5", 610), (SMALL, "ml-100k", "ensemble", 943),
                          (SMALL, "ml-100k", "ensemble5", 943), (LARGE, "ml-latest-small", "ensemble", 610),
                          (LARGE, "ml-latest-small", "ensemble5", 610)])  # fmt: skip
def test_the_shipped_fusion_model_matches_the_registry_retriever(llm, dataset, retriever, users):
    """The fusion models that ship were fitted on the retrievers' current defaults (the ensemble's include its
    members') and, where they use text similarity, on the default embedder's vectors: changing either without
    refitting would make ``--ranker llm`` fall back to the blend over that retriever, so this fails first."""
    from llmrec import fusion
    from llmrec.embedding import get_embedder

    path = fusion.fusion_file(llm, dataset, retriever)
    model = fusion.FusionModel.load(path)
    model.check(dataset=dataset, min_count=5, retriever=fusion.retriever_identity(retriever))
    card = model.card
    assert card["validation"] and card["test"]["users"] == users  # the card reports both splits
    assert set(model.features) <= set(fusion.FEATURES) and model.uses_llm and card["llm_model"] == llm
    if set(model.features) & set(fusion.TEXT_FEATURES):
        model.check(embedder=fusion.embedder_identity(get_embedder()))
        assert card["embedder"]  # checked against the store's embedder when the ranker is built


def test_the_best_shipped_pipeline_comes_first_and_evaluate_ranker_defaults_to_it():
    """``llmrec evaluate ml-latest-small --ranker llm`` without --models re-ranks the retriever of the shipped fusion
    model with the best cross-validated NDCG@10 (the five-seed ensemble's, on clean validation windows)."""
    from llmrec import fusion

    assert fusion.shipped_retrievers("qwen2.5-coder-0.5b-instruct", "ml-latest-small") == [
        "ensemble5", "ensemble", "sasrec"]
    assert fusion.shipped_retrievers("qwen2.5-coder-0.5b-instruct", "ml-100k") == ["ensemble5", "ensemble"]
    assert fusion.shipped_retrievers("qwen2.5-coder-1.5b-instruct", "ml-latest-small") == ["ensemble5", "ensemble"]
    assert fusion.shipped_retrievers("qwen2.5-coder-0.5b-instruct", "toy") == []


def test_an_evaluation_over_all_users_says_whether_it_gave_the_cards_test_figures():
    from types import SimpleNamespace

    from llmrec.evaluation.rerank import card_agreement

    card = {"test": {"ndcg@10": 0.05715, "recall@10": 0.11311, "recall@20": 0.17705}}
    same = SimpleNamespace(metrics={"ndcg@10": 0.057152, "recall@10": 0.113115, "recall@20": 0.177049})
    assert card_agreement(same, card) == " (this run: the same)"
    moved = SimpleNamespace(metrics={"ndcg@10": 0.05615, "recall@10": 0.113115, "recall@20": 0.177049})
    note = card_agreement(moved, card)
    assert "the card's ndcg@10 / recall@10 / recall@20: 0.05715 / 0.11311 / 0.17705;" in note
    assert "processor" in note and "retriever trained here" in note
    assert card_agreement(moved, {}) == ""  # a card without test figures: nothing to compare
