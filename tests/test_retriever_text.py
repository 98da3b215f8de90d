"""benchmarks/retriever_text.py's LRURec variants with item text (docs/benchmarks/ranking.md section 13): the
figures there rest on each variant using the text where it says and nowhere else."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from retriever_text import scorer_class

from llmrec.baselines.base import TrainData
from llmrec.baselines.lrurec import LRURecConfig

N_ITEMS, DIM = 30, 24  # more items and text dimensions than hidden units, as on the real data


def vectors(seed: int = 0) -> torch.Tensor:
    v = torch.randn(N_ITEMS, DIM, generator=torch.Generator().manual_seed(seed))
    return v / v.norm(dim=1, keepdim=True)


def net(variant: str, text: torch.Tensor):
    torch.manual_seed(0)
    return scorer_class(variant, text).Net(N_ITEMS, LRURecConfig(hidden=16, dropout=0.0)).eval()


def test_textin_reads_text_on_the_input_side_only_and_text_on_both():
    seq = torch.tensor([[1, 2, 3, 0]])
    a, b = net("textin", vectors(0)), net("textin", vectors(1))
    b.load_state_dict({k: v for k, v in a.state_dict().items() if k != "text"}, strict=False)
    hidden = torch.randn(3, 16)
    assert torch.equal(a.logits(hidden), b.logits(hidden))  # the output layer ignores the text
    assert not torch.allclose(a(seq), b(seq))  # the input side reads it
    tied, other = net("text", vectors(0)), net("text", vectors(1))
    other.load_state_dict({k: v for k, v in tied.state_dict().items() if k != "text"}, strict=False)
    assert not torch.allclose(tied.logits(hidden), other.logits(hidden))
    padding = tied.table()[0]
    assert torch.count_nonzero(padding) == 0  # padding stays a zero vector


def test_init_starts_from_the_text_and_every_variant_fits_and_scores():
    init = net("init", vectors(0)).items.weight[1:].detach()
    assert abs(float(init.std()) - 0.02) < 1e-3
    centred = vectors(0) - vectors(0).mean(0)
    top = torch.linalg.svd(centred, full_matrices=False)[0][:, 0]
    assert abs(float(torch.nn.functional.cosine_similarity(init[:, 0], top, dim=0))) > 0.999
    rng = np.random.default_rng(0)
    histories = tuple(rng.choice(N_ITEMS, 6, replace=False) for _ in range(10))
    train = TrainData(10, N_ITEMS, histories)
    for variant in ("base", "text", "textin", "init"):
        scorer = scorer_class(variant, vectors(0))(hidden=16, epochs=2, device="cpu", num_threads=1).fit(train)
        scores = scorer.score(np.array([0, -1]), [histories[0], histories[1][:3]])
        assert scores.shape == (2, N_ITEMS) and np.isfinite(scores).all()
