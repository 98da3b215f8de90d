"""BERT4Rec (Sun et al., CIKM 2019): bidirectional self-attention trained as a cloze over a user's item sequence.

The network is SASRec's transformer (``llmrec.baselines.sasrec``: pre-LN blocks, learned positions, output tied
to the item embeddings plus a per-item bias) with two changes: attention is bidirectional over the window's
items (padding is masked out as a key), and the vocabulary has one more token, ``[MASK]``. Training hides a
random ``mask_prob`` of each window's items behind ``[MASK]`` and predicts them from both sides with the
full-softmax cross-entropy over all items (label smoothing as SASRec's); as in the paper, a share of windows
(``last_only``) hide only their last item, which is exactly the task at scoring time. Every window has at
least one hidden item. Scoring appends ``[MASK]`` to the history's last ``max_len - 1`` items and reads the
next item off the hidden state there.

Windows of ``max_len`` items are cut back from the end of each history (SASRec's windows), right-padded, with
positions counted back from the window's last item (the original pads on the left to the same end), so the
scoring ``[MASK]`` sits at the position every window's last item trains at, whatever the history's length. The
trainer, seeding, early stopping and checkpoints are SASRec's. The defaults are SASRec's but for the feed-forward
width (BERT4Rec's 4x hidden), dropout 0.2 and a long training budget (see ``BERT4RecConfig``); the paper's
``mask_prob`` for MovieLens is 0.2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from llmrec.baselines.base import check
from llmrec.baselines.sasrec import SASRec, SASRecConfig, SASRecNet, training_windows


@dataclass(frozen=True)
class BERT4RecConfig(SASRecConfig):
    model: ClassVar[str] = "bert4rec"

    ffn_mult: int = 4  # BERT4Rec's feed-forward width
    mask_prob: float = 0.2  # share of a window's items hidden for the cloze
    last_only: float = 0.1  # share of windows that hide their last item only (the scoring task)
    # The cloze learns slowly and its validation curve is noisy: with SASRec's patience (8-16) it stopped after 40-90
    # epochs at clean-validation NDCG@10 0.02-0.04 on ml-latest-small, while 300 epochs were still rising at the end
    # (0.0725 at dropout 0.2, 0.0561 at 0.5): docs/benchmarks/ranking.md section 17. Minutes per fit become tens.
    dropout: float = 0.2
    epochs: int = 600
    patience: int = 50

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 < self.mask_prob < 1, f"bert4rec: mask_prob must be in (0, 1), got {self.mask_prob}")
        check(0 <= self.last_only <= 1, f"bert4rec: last_only must be in [0, 1], got {self.last_only}")
        check(self.negatives == 0, "bert4rec: negatives (a sampled softmax) is SASRec's only; use 0")


class BERT4RecNet(SASRecNet):
    """SASRec's network with bidirectional attention and a ``[MASK]`` token (id ``n_items + 1``)."""

    def __init__(self, n_items: int, cfg: BERT4RecConfig) -> None:
        super().__init__(n_items + 1, cfg)  # one more embedding row: [MASK]
        self.mask_id = n_items + 1
        self.bias = torch.nn.Parameter(torch.zeros(n_items))  # items only: [MASK] is never an answer

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """(batch, length) right-padded ids -> (batch, length, hidden). Positions count back from each window's
        last item, so the scoring ``[MASK]`` always sits at position 0, where every window's last item trains."""
        real = seq > 0
        back = real.sum(1, keepdim=True) - 1 - torch.arange(seq.shape[1], device=seq.device)
        x = self.drop(self.items(seq) + self.positions(back.clamp_min(0)))
        attend = real[:, None, None, :]  # every query reads the window's items and [MASK]s, never padding
        for block in self.blocks:
            x = block(x, attend)
        return self.norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, hidden, self.items.weight[1 : self.mask_id].T)


def cloze_mask(padded: torch.Tensor, mask_prob: float, last_only: float) -> torch.Tensor:
    """Which positions of right-padded windows to hide: each item with ``mask_prob``, the last item alone in a
    ``last_only`` share of rows, and the last item wherever a row drew none. Draws from torch's seeded generator."""
    real = padded > 0
    hidden = (torch.rand(padded.shape, device=padded.device) < mask_prob) & real
    last = real.sum(1) - 1
    rows = torch.arange(len(padded), device=padded.device)
    only_last = (torch.rand(len(padded), device=padded.device) < last_only) | ~hidden.any(1)
    hidden[only_last] = False
    hidden[rows[only_last], last[only_last]] = True
    return hidden


class BERT4Rec(SASRec):
    name = "bert4rec"
    Config = BERT4RecConfig
    Net: ClassVar[type[SASRecNet]] = BERT4RecNet

    def _windows(self, histories: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        # training_windows cuts max_len + 1 items (inputs and shifted targets); the cloze needs max_len
        return training_windows(histories, self.config.max_len - 1, self.config.max_windows)

    def _batch_loss(self, padded: torch.Tensor, n_items: int) -> torch.Tensor:
        cfg = self.config
        hide = cloze_mask(padded, cfg.mask_prob, cfg.last_only)
        hidden = self.net_(padded.masked_fill(hide, n_items + 1))[hide]
        return F.cross_entropy(self.net_.logits(hidden), padded[hide] - 1, label_smoothing=cfg.label_smoothing)

    def _score_input(self, history: np.ndarray) -> np.ndarray:
        items = np.asarray(history, dtype=np.int64)[-(self.config.max_len - 1) :] + 1
        return np.append(items, self.net_.mask_id)
