"""Shipped retriever checkpoints: the evaluation's fit installs the very weights a shipped fusion model was fitted
over (so its card's test figures are what a user gets), verified by sha256, never over a user's own checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmrec.baselines.base import TrainData
from llmrec.errors import ModelError
from llmrec.evaluation import shipped_retrievers
from llmrec.evaluation.rerank import fit_retriever, retriever_folder

N_USERS, N_ITEMS = 30, 20
# stops early (patience 1) within a few epochs; a shipped checkpoint must have finished
PARAMS = {"hidden": 16, "blocks": 1, "max_len": 10, "epochs": 40, "patience": 1, "dropout": 0.1, "batch_size": 16,
          "device": "cpu", "num_threads": 1}  # fmt: skip


def train_data() -> TrainData:
    rng = np.random.default_rng(0)
    histories = tuple((rng.integers(0, N_ITEMS) + np.arange(rng.integers(6, 10))) % N_ITEMS for _ in range(N_USERS))
    return TrainData(N_USERS, N_ITEMS, histories, seed=0)


def score(scorer) -> np.ndarray:
    data = train_data()
    return scorer.score(np.arange(5), list(data.histories[:5]))


@pytest.fixture
def shipped(tmp_path, monkeypatch) -> tuple[Path, np.ndarray]:
    """A finished LRURec checkpoint trained once, shipped into a folder that stands for finetune/retrievers."""
    trained = fit_retriever("lrurec", train_data(), PARAMS, tmp_path / "trainer-cache")
    folder = retriever_folder("lrurec", train_data(), PARAMS, tmp_path / "trainer-cache")
    ship_root = tmp_path / "retrievers"
    dest = shipped_retrievers.ship(folder, ship_root, dataset="toy", retriever="lrurec")
    monkeypatch.setattr(shipped_retrievers, "retrievers_dir", lambda: ship_root)
    return dest, score(trained)


def test_the_evaluations_fit_installs_the_shipped_weights_and_trains_nothing(shipped, tmp_path, monkeypatch):
    dest, expected = shipped
    manifest = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["files"]) == {"state.json", "best.safetensors"}  # the last weights do not ship
    from llmrec.baselines import training

    def no_training(*args, **kwargs):
        raise AssertionError("the shipped checkpoint should have been loaded, not trained")

    monkeypatch.setattr(training.Trainer, "run_batches", no_training)
    user_cache = tmp_path / "user-cache"
    scorer = fit_retriever("lrurec", train_data(), PARAMS, user_cache)
    np.testing.assert_array_equal(score(scorer), expected)
    assert (retriever_folder("lrurec", train_data(), PARAMS, user_cache) / "state.json").is_file()


def test_other_fit_data_finds_no_shipped_checkpoint(shipped, tmp_path):
    other = TrainData(N_USERS, N_ITEMS, tuple(h[:-1] for h in train_data().histories), seed=0)
    folder = retriever_folder("lrurec", other, PARAMS, tmp_path / "user-cache")
    assert not shipped_retrievers.install_shipped(folder) and not folder.exists()


def test_a_corrupt_shipped_file_is_refused_in_one_line_and_nothing_is_installed(shipped, tmp_path):
    dest, _ = shipped
    weights = dest / "best.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    user_cache = tmp_path / "user-cache"
    with pytest.raises(ModelError, match=r"best\.safetensors .*sha256.*reinstall llmrec") as err:
        fit_retriever("lrurec", train_data(), PARAMS, user_cache)
    assert "\n" not in str(err.value)
    assert not retriever_folder("lrurec", train_data(), PARAMS, user_cache).exists()


def test_a_users_own_checkpoint_is_never_replaced(shipped, tmp_path):
    folder = retriever_folder("lrurec", train_data(), PARAMS, tmp_path / "user-cache")
    folder.mkdir(parents=True)
    (folder / "state.json").write_text("{}", encoding="utf-8")
    assert not shipped_retrievers.install_shipped(folder)
    assert (folder / "state.json").read_text(encoding="utf-8") == "{}"


def test_an_unfinished_run_does_not_ship(tmp_path):
    folder = tmp_path / "cf" / "rerank-lrurec-x"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps({"stopped": "epochs"}), encoding="utf-8")
    with pytest.raises(ModelError, match="did not stop early"):
        shipped_retrievers.ship(folder, tmp_path / "retrievers")


def test_every_shipped_checkpoint_matches_its_manifest_and_the_fit_that_looks_for_it(shared_data):
    """The real shipped folders: each file as its manifest says, and each folder named as the evaluation's
    test-time fit of its data set names its cache folder (else it would never be found)."""
    from llmrec.data import load_dataset, preprocess
    from llmrec.evaluation.protocols import make_split
    from llmrec.resources import retrievers_dir

    folders = sorted(p.parent for p in retrievers_dir().glob("*/manifest.json"))
    assert folders, "no shipped retriever checkpoint"
    expected = {}
    for folder in folders:
        shipped_retrievers.verified_files(folder)
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        dataset, retriever = manifest["dataset"], manifest["retriever"]
        if dataset not in expected:
            expected[dataset] = make_split("loo", preprocess(load_dataset(dataset, data_dir=shared_data)), 0)
        assert folder.name == retriever_folder(retriever, expected[dataset].final_train, None, Path("x")).name


def test_a_checkpoint_trained_here_is_kept_and_named_in_a_warning(shipped, tmp_path, caplog):
    """The user's own training is kept, and said to be other weights than the shipped cards were measured over."""
    _, expected = shipped
    folder = retriever_folder("lrurec", train_data(), PARAMS, tmp_path / "user-cache")
    assert shipped_retrievers.install_shipped(folder) and not shipped_retrievers.differs_from_shipped(folder)
    other = {**PARAMS, "dropout": 0.3}  # same shapes, other weights: stands for a training on another machine
    fit_retriever("lrurec", train_data(), other, tmp_path / "other-cache")
    trained = retriever_folder("lrurec", train_data(), other, tmp_path / "other-cache")
    for name in ("best.safetensors", "last.safetensors"):
        (folder / name).write_bytes((trained / name).read_bytes())
    assert shipped_retrievers.differs_from_shipped(folder)
    with caplog.at_level("WARNING"):
        scorer = fit_retriever("lrurec", train_data(), PARAMS, tmp_path / "user-cache")
    assert "not the one llmrec ships" in caplog.text
    assert not np.array_equal(score(scorer), expected)  # the user's weights were used, not replaced
