"""benchmarks/ltr_ranker.py builds LambdaRank's training lists from out-of-fold ensembles; the figures in
docs/benchmarks/ranking.md section 11 rest on each list labelling the true next item, on every user being scored
by the ensemble that never saw them, and on the input being masked as the protocol masks it."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from ltr_ranker import make_lists, window_member_features

from llmrec.baselines.ensemble import standardise

N_ITEMS = 40


class Member:
    """Scores item i by a fixed permutation of the catalogue, shifted by the last history item."""

    def __init__(self, seed: int) -> None:
        self.base = np.random.default_rng(seed).permutation(N_ITEMS).astype(np.float64)

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        assert (np.asarray(users) == -1).all()  # out-of-fold users are unknown to the scorer
        return np.stack([np.roll(self.base, int(h[-1])) for h in histories])


def ensemble(seed: int) -> SimpleNamespace:
    members = [Member(seed), Member(seed + 1)]

    def member_scores(users: np.ndarray, histories: list[np.ndarray]) -> list[np.ndarray]:
        return [standardise(m.score(users, histories)) for m in members]

    return SimpleNamespace(config=SimpleNamespace(members=("a", "b")), members_=members, member_scores=member_scores)


class Seq:
    n_users, n_items = 6, N_ITEMS

    def __init__(self) -> None:
        rng = np.random.default_rng(3)
        self.sequences = [rng.permutation(N_ITEMS)[:12] for _ in range(self.n_users)]

    def train(self, user: int) -> np.ndarray:
        return self.sequences[user]


def test_lists_label_the_true_item_scored_by_the_users_own_fold():
    seq = Seq()
    folds = np.array([0, 1, 0, 1, 0, 1])
    oof = SimpleNamespace(scorers=[ensemble(0), ensemble(10)], fold_of_user=folds)
    lists = make_lists(seq, oof, (1.0, 0.37), n_positions=60, batch=7)
    assert 0 < len(lists["users"]) <= 60
    for i, (user, position) in enumerate(zip(lists["users"], lists["positions"])):
        history, items = seq.train(user)[:position], lists["items"][i]
        assert items[lists["targets"][i]] == seq.train(user)[position]  # the label is the true next item
        assert not set(items.tolist()) & set(history.tolist())  # the input is masked
        fold = oof.scorers[folds[user]]
        z = [(s - s.mean()) / s.std() for s in (m.score(np.array([-1]), [history])[0] for m in fold.members_)]
        total = z[0] + 0.37 * z[1]  # a weight that leaves no exact ties
        total[history] = -np.inf
        np.testing.assert_array_equal(items, np.argsort(-total, kind="stable")[:20])  # the user's own fold's top 20
        np.testing.assert_allclose(lists["members"][i][:, 0], z[0][items], rtol=1e-5)
        np.testing.assert_allclose(lists["scores"][i], total[items], rtol=1e-5)


def test_member_features_rank_inside_the_window():
    z = np.array([[0.0, 3.0, 1.0, 2.0], [2.0, 1.0, 0.0, 3.0]])
    features = window_member_features(z, np.array([3, 1, 0]))
    np.testing.assert_array_equal(features[:, :2], [[2.0, 3.0], [3.0, 1.0], [0.0, 2.0]])
    np.testing.assert_allclose(features[:, 2], [1 / 2, 1 / 1, 1 / 3])  # member a: item 1 first, 3 second, 0 last
    np.testing.assert_allclose(features[:, 3], [1 / 1, 1 / 3, 1 / 2])
