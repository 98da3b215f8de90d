"""Every registered scorer on a tiny two-cluster data set: shapes, masking, seeds, fold-in; the registry."""

from __future__ import annotations

import numpy as np
import pytest

from llmrec.baselines import (
    UNKNOWN_USER,
    Scorer,
    TrainData,
    fold_in_factors,
    get_scorer,
    history_matrix,
    register_scorer,
    scorer_names,
    scorer_spec,
)
from llmrec.errors import ConfigError, LlmrecError, ModelError

N_USERS, N_ITEMS, HALF = 40, 30, 15

# Small settings so the whole file runs in seconds.
FAST = {
    "pop": {},
    "itemknn": {"k": 10, "num_threads": 1},
    "itemknn-bm25": {"k": 10, "num_threads": 1},
    "ease": {"l2": 10.0},
    "bpr": {"factors": 8, "epochs": 20, "learning_rate": 0.05, "batch_size": 64},
    "implicit-als": {"factors": 8, "iterations": 5, "num_threads": 1},
    "implicit-bpr": {"factors": 8, "iterations": 50, "learning_rate": 0.05},
}


def two_clusters(seed: int = 0) -> TrainData:
    """Users 0-19 only take items 0-14, users 20-39 only items 15-29; 8 items each, random order."""
    rng = np.random.default_rng(seed)
    histories = tuple(
        rng.choice(HALF, size=8, replace=False) + (0 if u < N_USERS // 2 else HALF) for u in range(N_USERS)
    )
    return TrainData(N_USERS, N_ITEMS, histories, seed=seed)


@pytest.fixture(scope="module")
def train() -> TrainData:
    return two_clusters()


def test_registry_names_the_baselines():
    assert set(FAST) <= set(scorer_names())
    with pytest.raises(ConfigError, match=r"unknown model 'nope'; known models: .*ease.*pop"):
        get_scorer("nope")
    with pytest.raises(ConfigError, match="already registered"):
        register_scorer("pop", lambda **kw: get_scorer("pop"))


def test_unknown_and_invalid_hyperparameters_are_config_errors():
    with pytest.raises(ConfigError, match=r"unknown hyper-parameter.*lambda_"):
        get_scorer("ease", lambda_=3)
    with pytest.raises(ConfigError, match="l2 must be > 0"):
        get_scorer("ease", l2=-1.0)
    with pytest.raises(ConfigError, match="similarity must be cosine or bm25"):
        get_scorer("itemknn", similarity="jaccard")


def test_search_spaces_are_valid_hyperparameters():
    for name in FAST:
        spec = scorer_spec(name)
        get_scorer(name, **{key: values[0] for key, values in spec.search_space.items()})


@pytest.mark.parametrize("name", sorted(FAST))
def test_scorer_contract(name: str, train: TrainData):
    scorer = get_scorer(name, **FAST[name]).fit(train)
    users = np.arange(N_USERS)
    scores = scorer.score(users, train.histories)
    assert scores.shape == (N_USERS, N_ITEMS) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    # the same seed gives the same model
    again = get_scorer(name, **FAST[name]).fit(train).score(users, train.histories)
    np.testing.assert_array_equal(scores, again)
    # recommend() never returns the history
    top = scorer.recommend(users, train.histories, 5)
    for row, history in zip(top, train.histories):
        assert not set(row.tolist()) & set(history.tolist())
    # hyper-parameters are plain values, runtime settings left out
    params = scorer.hyperparameters()
    assert "num_threads" not in params
    assert all(isinstance(v, (int, float, str, bool)) for v in params.values())


@pytest.mark.parametrize("name", sorted(set(FAST) - {"pop"}))
def test_scorers_learn_the_clusters_and_fold_in_newcomers(name: str, train: TrainData):
    scorer = get_scorer(name, **FAST[name]).fit(train)
    # a known user of cluster A and a newcomer who named three cluster-B items
    histories = [train.histories[0], np.array([HALF, HALF + 1, HALF + 2])]
    top = scorer.recommend(np.array([0, UNKNOWN_USER]), histories, 5)
    assert (top[0] < HALF).all(), f"{name} recommends outside cluster A: {top[0]}"
    assert (top[1] >= HALF).all(), f"{name} folds the newcomer in wrongly: {top[1]}"


@pytest.mark.parametrize("name", ["itemknn", "ease"])
def test_item_based_scorers_need_no_user_id(name: str, train: TrainData):
    scorer = get_scorer(name, **FAST[name]).fit(train)
    known = scorer.score(np.array([3]), [train.histories[3]])
    unknown = scorer.score(np.array([UNKNOWN_USER]), [train.histories[3]])
    np.testing.assert_array_equal(known, unknown)


def test_pop_scores_training_counts(train: TrainData):
    scores = get_scorer("pop").fit(train).score(np.array([UNKNOWN_USER]), [np.array([], dtype=np.int64)])
    np.testing.assert_array_equal(scores[0], train.item_counts.astype(np.float32))


def test_different_seeds_give_different_factor_models():
    a = get_scorer("bpr", **FAST["bpr"]).fit(two_clusters(0)).score(np.arange(3), two_clusters(0).histories[:3])
    b = get_scorer("bpr", **FAST["bpr"]).fit(two_clusters(0).with_seed(1))
    assert not np.array_equal(a, b.score(np.arange(3), two_clusters(0).histories[:3]))


def test_score_validates_its_input(train: TrainData):
    scorer = get_scorer("ease", l2=1.0)
    with pytest.raises(ModelError, match="fit"):
        scorer.score(np.array([0]), [np.array([1])])
    scorer.fit(train)
    with pytest.raises(LlmrecError, match="user ids"):
        scorer.score(np.array([N_USERS]), [np.array([1])])
    with pytest.raises(LlmrecError, match="history item ids"):
        scorer.score(np.array([0]), [np.array([N_ITEMS])])
    with pytest.raises(LlmrecError, match="2 histories"):
        scorer.score(np.array([0]), [np.array([1]), np.array([2])])


def test_train_data_validates_and_derives():
    with pytest.raises(ConfigError, match="histories"):
        TrainData(2, 3, (np.array([0]),))
    with pytest.raises(ConfigError, match="outside"):
        TrainData(1, 3, (np.array([3]),))
    with pytest.raises(ConfigError, match="ratings"):
        TrainData(1, 3, (np.array([0, 1]),), ratings=(np.array([4.0]),))
    data = TrainData(2, 3, (np.array([0, 2, 2]), np.array([], dtype=np.int64)))
    assert data.user_items.toarray().tolist() == [[1, 0, 1], [0, 0, 0]]
    assert data.item_counts.tolist() == [1, 0, 1]
    assert history_matrix([np.array([1, 1])], 3).toarray().tolist() == [[0, 1, 0]]


def test_fold_in_matches_implicit_recalculate_user(train: TrainData):
    """Our least-squares fold-in is implicit's ALS user update (implicit's confidence alpha = ours + 1)."""
    pytest.importorskip("implicit")
    scorer = get_scorer("implicit-als", factors=6, iterations=3, alpha=2.0, regularization=0.5, num_threads=1)
    scorer.fit(train)
    model = scorer.model_
    history = [train.histories[5]]
    theirs = model.recalculate_user(0, history_matrix(history, N_ITEMS))
    ours = fold_in_factors(model.item_factors, history, regularization=0.5, alpha=1.0)[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-5)


def test_validation_hook_scores_ndcg(train: TrainData):
    from llmrec.baselines import ValidationSet

    users = np.arange(N_USERS)
    targets = tuple(np.array([h[-1]]) for h in train.histories)
    inputs = tuple(h[:-1] for h in train.histories)
    validation = ValidationSet(users, inputs, targets)
    value = validation.evaluate(get_scorer("ease", l2=1.0).fit(train).score)
    assert 0.0 < value <= 1.0


def test_a_custom_scorer_plugs_in():
    class Constant(Scorer):
        name = "constant"

        def _fit(self, train: TrainData) -> None:
            pass

        def _score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
            return np.zeros((len(users), self.n_items))

    scores = Constant().fit(two_clusters()).score(np.array([0, -1]), [np.array([1]), np.array([], dtype=np.int64)])
    assert scores.shape == (2, N_ITEMS) and Constant().hyperparameters() == {}
