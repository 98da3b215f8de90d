"""The ensemble scorer: per-user z-scores of its members, weighted; its identity names the members' settings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_baselines import two_clusters

from llmrec.baselines import builtin, get_scorer, registry
from llmrec.baselines.base import Scorer, TrainData
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


class SeedNoise(Scorer):
    """A stand-in network: its scores are noise drawn from the fit seed, so each seeded copy differs."""

    name = "seed-noise"

    def _fit(self, train: TrainData) -> None:
        self.seed_ = train.seed
        self.base_ = np.random.default_rng(train.seed).normal(size=train.n_items)

    def _score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        return np.tile(self.base_, (len(users), 1))


def test_seeds_average_the_neural_members_copies_and_fit_deterministic_members_once(monkeypatch):
    monkeypatch.setattr(builtin, "NEURAL", builtin.NEURAL | {"seed-noise"})
    monkeypatch.setitem(registry._registry(), "seed-noise", registry.ScorerSpec("seed-noise", lambda **kw: SeedNoise()))
    train = dataclasses.replace(two_clusters(), seed=7)
    users, histories = np.arange(4), [h[:4] for h in train.histories[:4]]
    fitted = get_scorer("ensemble", members=("seed-noise", "pop"), weights=(1.0, 0.5), seeds=3).fit(train)
    noise, pop = fitted.members_
    assert [c.seed_ for c in noise] == [7, 8, 9] and len(pop) == 1  # copy k: the fit seed + k; EASE-like once
    copies = [standardise(c.score(users, histories)) for c in noise]
    expected = standardise(np.mean(copies, axis=0)) + 0.5 * standardise(pop[0].score(users, histories))
    np.testing.assert_allclose(fitted.score(users, histories), expected, rtol=1e-5)
    one = get_scorer("ensemble", members=("seed-noise", "pop"), weights=(1.0, 0.5)).fit(train)
    assert [c.seed_ for c in one.members_[0]] == [7]  # seeds=1: the plain fit, as before seeds existed
    assert "seeds" not in one.hyperparameters() and fitted.hyperparameters()["seeds"] == 3
    assert get_scorer("ensemble5").hyperparameters()["seeds"] == 5  # the registry's five-seed ensemble
    with pytest.raises(ConfigError, match="seeds must be >= 1"):
        get_scorer("ensemble", seeds=0)


def test_copies_another_process_is_training_are_fitted_last_so_two_processes_share_the_work(monkeypatch, tmp_path):
    """Two evaluations sharing a cache: while another process trains copy 0 (its lock held), the ensemble trains
    the other copies first, then waits for copy 0 and fits it (here nobody finished it, so it trains it)."""
    import threading
    import time

    pytest.importorskip("torch")
    from llmrec.baselines.training import training_lock

    tiny = {"hidden": 16, "blocks": 1, "heads": 2, "max_len": 12, "epochs": 2, "batch_size": 16, "device": "cpu"}
    monkeypatch.setattr(builtin, "NEURAL", builtin.NEURAL | {"tiny"})
    monkeypatch.setitem(registry._registry(), "tiny",
                        registry.ScorerSpec("tiny", lambda **kw: get_scorer("sasrec", **tiny, **kw)))  # fmt: skip
    root, fitted = tmp_path / "ensemble", {}
    seeds = [root / "tiny-seed1" / "state.json", root / "tiny-seed2" / "state.json"]
    ensemble = get_scorer("ensemble", members=("tiny",), weights=(1.0,), seeds=3, checkpoint_dir=str(root))
    worker = threading.Thread(target=lambda: fitted.setdefault("model", ensemble.fit(two_clusters())))
    with training_lock(root / "tiny", "another process"):
        worker.start()
        deadline = time.monotonic() + 120
        while not all(p.is_file() for p in seeds) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(p.is_file() for p in seeds), "the free copies were not trained while copy 0 was busy"
        assert not (root / "tiny" / "state.json").exists() and worker.is_alive()  # it waits for copy 0
    worker.join(120)
    assert (root / "tiny" / "state.json").is_file() and len(fitted["model"].members_[0]) == 3
