"""benchmarks/retriever_refit.py (docs/benchmarks/ranking.md section 16): its figures rest on the refitted copy being
trained on every fit item, the held-out last items included, for exactly the hold-out fit's best epoch count."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from retriever_refit import report, train

from llmrec.data.split import SequenceData
from llmrec.evaluation.protocols import loo_split

N_USERS, N_ITEMS, LENGTH = 24, 20, 8
TINY = {"hidden": 8, "blocks": 1, "heads": 1, "epochs": 6, "patience": 2, "device": "cpu"}


def toy() -> SequenceData:
    rng = np.random.default_rng(0)
    sequences = tuple(rng.choice(N_ITEMS, LENGTH, replace=False) for _ in range(N_USERS))
    return SequenceData("toy", tuple(str(u) for u in range(N_USERS)), tuple(str(i) for i in range(N_ITEMS)),
                        sequences, tuple(np.full(LENGTH, 4.0) for _ in sequences),
                        tuple(np.arange(LENGTH, dtype=np.int64) for _ in sequences))  # fmt: skip


def state(folder: Path) -> dict:
    return json.loads((folder / "state.json").read_text())


def test_the_refit_trains_on_every_item_for_the_hold_out_fits_best_epoch_count(tmp_path):
    split = loo_split(toy())
    train("sasrec", "valid", 2, split, tmp_path, None, **TINY)
    fit_items = N_USERS * (LENGTH - 2)  # the training items: validation and test items left out
    for name in ("sasrec", "sasrec-seed1"):
        held, refit = state(tmp_path / "valid" / "holdout" / name), state(tmp_path / "valid" / "refit" / name)
        assert held["fingerprint"]["n_interactions"] == fit_items - N_USERS  # each user's last fit item held out
        assert refit["fingerprint"]["n_interactions"] == fit_items  # ... and a training target in the refit
        assert refit["fingerprint"]["holdout"] is False
        assert refit["epochs_run"] == held["best_epoch"] >= 1
        for kind in ("holdout", "refit"):
            scores = np.load(tmp_path / f"valid-{kind}-{name}.npy")
            assert scores.shape == (N_USERS, N_ITEMS) and np.isfinite(scores).all()
    assert state(tmp_path / "valid" / "holdout" / "sasrec-seed1")["fingerprint"]["seed"] == 1  # copy k: seed + k
    before = (tmp_path / "valid-refit-sasrec.npy").stat().st_mtime_ns
    train("sasrec", "valid", 2, split, tmp_path, None, **TINY)  # cached: nothing trained or scored again
    assert (tmp_path / "valid-refit-sasrec.npy").stat().st_mtime_ns == before


def test_the_table_has_a_row_per_kind_and_number_of_seeds_once_both_networks_are_there(tmp_path):
    split = loo_split(toy())
    train("sasrec", "valid", 2, split, tmp_path, None, **TINY)
    assert report("valid", 2, split, tmp_path) == []  # LRURec's copies missing: no ensemble to form
    train("lrurec", "valid", 2, split, tmp_path, None, **TINY)
    rows = report("valid", 2, split, tmp_path)
    assert [r.split(" | ")[1:3] for r in rows] == [[kind, k] for kind in ("holdout", "refit", "mixed")
                                                   for k in ("1", "2")]  # fmt: skip
