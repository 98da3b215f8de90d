"""The ensemble scorer: per-user z-scores of its members, weighted; its identity names the members' settings."""

from __future__ import annotations

import numpy as np
import pytest
from test_baselines import two_clusters

from llmrec.baselines import get_scorer
from llmrec.baselines.ensemble import standardise
from llmrec.errors import ConfigError


def test_standardise_puts_every_row_on_one_scale_and_keeps_masked_items_out():
    scores = np.array([[1.0, 2.0, 3.0, -np.inf], [100.0, 300.0, 200.0, 400.0]])
    z = standardise(scores)
    assert z[0, 3] == -np.inf
    for row in z:
        finite = row[np.isfinite(row)]
        assert finite.mean() == pytest.approx(0.0) and finite.std() == pytest.approx(1.0)
    assert np.argsort(-z[1]).tolist() == np.argsort(-scores[1]).tolist()  # the order within a row is kept


def test_one_weighted_member_ranks_as_that_member_and_two_members_mix():
    train = two_clusters()
    users, histories = np.arange(6), [h[:4] for h in train.histories[:6]]
    pop = get_scorer("pop").fit(train).score(users, histories)  # members at their defaults
    knn = get_scorer("itemknn").fit(train).score(users, histories)
    alone = get_scorer("ensemble", members=("pop", "itemknn"), weights=(1.0, 0.0)).fit(train)
    got = alone.score(users, histories)
    for row, expected in zip(got, pop):
        keep = np.isfinite(expected)
        assert np.argsort(-row[keep], kind="stable").tolist() == np.argsort(-expected[keep], kind="stable").tolist()
    mixed = get_scorer("ensemble", members=("pop", "itemknn"), weights=(1.0, 0.5)).fit(train).score(users, histories)
    np.testing.assert_allclose(mixed, standardise(pop) + 0.5 * standardise(knn), rtol=1e-5)


def test_its_identity_holds_the_members_settings_and_bad_weights_are_refused():
    params = get_scorer("ensemble").hyperparameters()
    assert params["members"] == ["lrurec", "sasrec", "ease"] and params["weights"] == [1.0, 0.3, 0.1]
    assert params["member_hyperparameters"]["ease"] == get_scorer("ease").hyperparameters()
    assert params["member_hyperparameters"]["sasrec"] == get_scorer("sasrec").hyperparameters()
    assert params["member_hyperparameters"]["lrurec"] == get_scorer("lrurec").hyperparameters()
    with pytest.raises(ConfigError, match="3 members but 1 weights"):
        get_scorer("ensemble", weights=(1.0,))
    with pytest.raises(ConfigError, match="cannot contain itself"):
        get_scorer("ensemble", members=("ensemble",), weights=(1.0,))
