"""benchmarks/retriever_bert4rec.py (docs/benchmarks/ranking.md section 17): BERT4Rec's copies are hold-out fits only,
its weight beside ensemble5 is chosen on validation, and the weight-0 row is the ensemble5 that retriever_refit
reports from the same copies."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from retriever_bert4rec import WEIGHTS, tables
from retriever_refit import report, train
from test_retriever_refit import TINY, toy

from llmrec.evaluation.protocols import loo_split


def test_bert4rec_copies_are_hold_out_fits_without_refits(tmp_path):
    split = loo_split(toy())
    train("bert4rec", "valid", 2, split, tmp_path, None, refit=False, **TINY)
    assert sorted(p.name for p in tmp_path.glob("*.npy")) == ["valid-holdout-bert4rec-seed1.npy",
                                                              "valid-holdout-bert4rec.npy"]  # fmt: skip
    assert not (tmp_path / "valid" / "refit").exists()


def test_the_table_chooses_bert4recs_weight_on_validation_and_starts_from_ensemble5(tmp_path):
    split = loo_split(toy())
    for member in ("lrurec", "sasrec"):
        train(member, "valid", 2, split, tmp_path, None, **TINY)
    assert "copies missing" in tables(split, tmp_path, seeds=2, own=2)[2]  # no BERT4Rec yet: no row to form
    train("bert4rec", "valid", 2, split, tmp_path, None, refit=False, **TINY)
    lines = tables(split, tmp_path, seeds=2, own=2)
    valid = [line.split(" | ") for line in lines if line.startswith("| valid")]
    assert [row[1] for row in valid[:2]] == ["BERT4Rec alone, 1 seed(s)", "BERT4Rec alone, 2 seed(s)"]
    mixed = valid[2:]
    assert len(mixed) == len(WEIGHTS) and sum("(chosen)" in row[1] for row in mixed) <= 1
    recall20 = [float(row[4].rstrip(" |")) for row in mixed]
    chosen = [r for r, row in zip(recall20, mixed) if "(chosen)" in row[1]]
    assert chosen == [max(recall20)] or (not chosen and recall20[0] == max(recall20))  # 0 chosen: no mark
    holdout = next(r for r in report("valid", 2, split, tmp_path) if r.split(" | ")[1:3] == ["holdout", "2"])
    assert mixed[0][1] == "`ensemble5`" and mixed[0][2] == holdout.split(" | ")[3]  # the same NDCG@10 ± se
    assert any(line.startswith("| test | (copies missing") for line in lines)
