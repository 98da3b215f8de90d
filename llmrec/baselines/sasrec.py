"""SASRec (Kang & McAuley, 2018): causal self-attention over a user's item sequence.

The network is a small pre-LN transformer decoder (nanoGPT style): item embeddings plus learned
positional embeddings, ``blocks`` blocks of causal multi-head attention
(``torch.nn.functional.scaled_dot_product_attention`` with ``is_causal=True``) and a position-wise
feed-forward layer, each with dropout and a residual connection, then a final LayerNorm. The
output layer is tied to the item embeddings (plus a per-item bias).

Training follows LlamaRec's reference SASRec rather than the original paper: every position of each
training sequence predicts the next item with a cross-entropy over *all* items (a full softmax, not
sampled BCE), which converges far faster and ranks better under full-ranking evaluation. Sequences
longer than ``max_len`` are cut into windows of ``max_len`` transitions counted back from the end.
Sequences are right-padded, so causal attention never sees padding and positions count from the
window's first item -- the same at training and scoring time.

Defaults: hidden 64, 2 blocks, 2 heads, AdamW lr 3e-3, batch 32 as in LlamaRec; dropout 0.5, label smoothing
0.1 and windows of 50 items (LlamaRec: 0.2, none, 200) won issue 16's sweep on the validation item of
ml-latest-small (NDCG@10 0.0897 against 0.0683; docs/benchmarks/ranking.md). ``negatives`` (a sampled softmax)
and ``max_windows`` (recent windows only) trade accuracy for speed and are off by default.

Scores for (user, history) come from the hidden state at the last item of the history's last
``max_len`` items dotted with every item embedding, so users the model never saw need no fold-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from llmrec.baselines.base import RUNTIME, Scorer, TrainData, check
from llmrec.baselines.training import Trainer, TrainingConfig, fingerprint, fit_data

SCORE_CHUNK = 256  # users per forward pass when scoring
SORT_POOL = 16  # batches per pool sorted by length (less padding, still shuffled)


@dataclass(frozen=True)
class SASRecConfig(TrainingConfig):
    model: ClassVar[str] = "sasrec"

    hidden: int = 64
    blocks: int = 2
    heads: int = 2
    dropout: float = 0.5
    max_len: int = 50
    epochs: int = 200
    patience: int = 8
    learning_rate: float = 3e-3
    weight_decay: float = 0.01
    batch_size: int = 32
    # A safety net only: a wall-clock cap that binds makes the model depend on the machine's load (on the shared
    # 2-core box at load 10, 720 s stopped SASRec after 10 of its ~40 epochs: test NDCG@10 0.036, not 0.058).
    max_seconds: float | None = field(default=4 * 3600.0, metadata=RUNTIME)
    max_windows: int = 0  # windows of max_len per user and epoch, the most recent first; 0 = all
    negatives: int = 0  # 0: softmax over all items; n: over the target and n shared uniform negatives per batch
    ffn_mult: int = 1  # width of the position-wise feed-forward layer in multiples of hidden (SASRec 1, LRURec 4)
    label_smoothing: float = 0.1  # of the full-softmax cross-entropy

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.hidden > 0 and self.hidden % self.heads == 0,
            f"sasrec: hidden must be a multiple of heads, got {self.hidden}/{self.heads}",
        )
        check(self.blocks > 0, f"sasrec: blocks must be > 0, got {self.blocks}")
        check(0 <= self.dropout < 1, f"sasrec: dropout must be in [0, 1), got {self.dropout}")
        check(self.max_windows >= 0, f"sasrec: max_windows must be >= 0, got {self.max_windows}")
        check(self.negatives >= 0, f"sasrec: negatives must be >= 0, got {self.negatives}")
        check(self.max_len > 1, f"sasrec: max_len must be > 1, got {self.max_len}")
        check(self.ffn_mult >= 1, f"sasrec: ffn_mult must be >= 1, got {self.ffn_mult}")
        check(0 <= self.label_smoothing < 1, f"sasrec: label_smoothing must be in [0, 1), got {self.label_smoothing}")


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(LN(x)), then x + ffn(LN(x))."""

    def __init__(self, hidden: int, heads: int, dropout: float, ffn_mult: int = 1) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        width = ffn_mult * hidden  # SASRec: 1x
        self.ffn = nn.Sequential(nn.Linear(hidden, width), nn.GELU(), nn.Linear(width, hidden))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attend: torch.Tensor | None = None) -> torch.Tensor:
        """Causal attention, or with ``attend`` (a boolean mask broadcast to (batch, heads, length, length),
        True where a query may read a key) bidirectional attention restricted to it (BERT4Rec)."""
        batch, length, hidden = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(hidden, dim=2)
        q, k, v = (t.view(batch, length, self.heads, hidden // self.heads).transpose(1, 2) for t in (q, k, v))
        dropout = self.dropout if self.training else 0.0
        causal = attend is None
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=attend, dropout_p=dropout, is_causal=causal)
        x = x + self.drop(self.proj(attended.transpose(1, 2).reshape(batch, length, hidden)))
        return x + self.drop(self.ffn(self.norm2(x)))


class NextItemNet(nn.Module):
    """Item ids -> hidden states (``forward``), scored against every item by the input embeddings tied to the
    output plus a per-item bias (``logits``). Subclasses set ``items`` (id 0 is padding) and ``bias``."""

    items: nn.Embedding
    bias: nn.Parameter

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, hidden, self.items.weight[1:].T)


class SASRecNet(NextItemNet):
    def __init__(self, n_items: int, cfg: SASRecConfig) -> None:
        super().__init__()
        self.items = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=0)  # id 0 is padding
        self.positions = nn.Embedding(cfg.max_len, cfg.hidden)
        self.bias = nn.Parameter(torch.zeros(n_items))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.hidden, cfg.heads, cfg.dropout, cfg.ffn_mult) for _ in range(cfg.blocks))
        self.norm = nn.LayerNorm(cfg.hidden)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.items.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """(batch, length) right-padded item ids (1-based) -> (batch, length, hidden)."""
        positions = torch.arange(seq.shape[1], device=seq.device)
        x = self.drop(self.items(seq) + self.positions(positions))
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def sampled_softmax_loss(net: NextItemNet, hidden: torch.Tensor, targets: torch.Tensor, n: int) -> torch.Tensor:
    """Cross-entropy over each target and ``n`` uniform negatives shared by the batch (accidental hits masked).

    With a uniform proposal the log-Q correction is a constant, so none is applied.
    """
    weight = net.items.weight[1:]
    negatives = torch.randint(0, weight.shape[0], (n,), device=hidden.device)
    positive = (hidden * weight[targets]).sum(1) + net.bias[targets]
    negative = torch.addmm(net.bias[negatives], hidden, weight[negatives].T)
    negative = negative.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([positive[:, None], negative], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long, device=hidden.device))


def training_windows(histories: tuple[np.ndarray, ...], max_len: int, max_windows: int = 0) -> list[np.ndarray]:
    """Sequences of at most ``max_len + 1`` items (inputs and next-item targets), cut back from the end."""
    windows = []
    for history in histories:
        seq = np.asarray(history, dtype=np.int64) + 1
        end, count = len(seq), 0
        while end > 1 and (not max_windows or count < max_windows):
            count += 1
            start = max(0, end - max_len - 1)
            windows.append(seq[start:end])
            end = start + 1 if start > 0 else 0
    return windows


def pad_right(seqs: list[np.ndarray]) -> torch.Tensor:
    out = np.zeros((len(seqs), max(len(s) for s in seqs)), dtype=np.int64)
    for row, seq in enumerate(seqs):
        out[row, : len(seq)] = seq
    return torch.from_numpy(out)


class SASRec(Scorer):
    name = "sasrec"
    Config = SASRecConfig
    Net: ClassVar[type[NextItemNet]] = SASRecNet  # next-item network; LRURec swaps in linear recurrent units

    def _fit(self, train: TrainData) -> None:
        cfg = self.config
        train = fit_data(train, cfg)
        trainer = Trainer(cfg, train.seed, fingerprint(self.hyperparameters(), train))
        self.device_ = trainer.device
        self.net_ = trainer.prepare(self.Net(train.n_items, cfg))
        optimizer = trainer.adamw(self.net_.parameters())
        windows = self._windows(train.histories)

        def batches(rng: np.random.Generator):
            order = rng.permutation(len(windows))
            pool = cfg.batch_size * SORT_POOL
            chunks = []
            for start in range(0, len(order), pool):  # sort by length within pools: little padding
                block = sorted(order[start : start + pool], key=lambda i: len(windows[i]))
                chunks += [block[i : i + cfg.batch_size] for i in range(0, len(block), cfg.batch_size)]
            for chunk in (chunks[i] for i in rng.permutation(len(chunks))):
                yield pad_right([windows[i] for i in chunk])

        def loss(padded: torch.Tensor) -> torch.Tensor:
            (padded,) = trainer.to_device(padded)
            return self._batch_loss(padded, train.n_items)

        def run_epoch(epoch: int, rng: np.random.Generator) -> float:
            return trainer.run_batches(batches(rng), loss, optimizer)

        evaluate = None
        if train.validation is not None:
            validation = train.validation
            evaluate = lambda: validation.evaluate(self._predict)  # noqa: E731
        self.train_result_ = trainer.fit(self.net_, run_epoch, evaluate)
        self.best_epoch_ = self.train_result_.best_epoch

    def _windows(self, histories: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        """Training sequences (1-based item ids), one batch row each."""
        return training_windows(histories, self.config.max_len, self.config.max_windows)

    def _batch_loss(self, padded: torch.Tensor, n_items: int) -> torch.Tensor:
        """Next-item cross-entropy at every position of a batch of right-padded windows."""
        cfg = self.config
        inputs, targets = padded[:, :-1], padded[:, 1:]
        hidden = self.net_(inputs)
        mask = targets > 0
        hidden, targets = hidden[mask], targets[mask] - 1
        if not 0 < cfg.negatives < n_items - 1:
            return F.cross_entropy(self.net_.logits(hidden), targets, label_smoothing=cfg.label_smoothing)
        return sampled_softmax_loss(self.net_, hidden, targets, cfg.negatives)

    def _score_input(self, history: np.ndarray) -> np.ndarray:
        """The sequence whose last position's hidden state scores the next item: the last ``max_len`` items."""
        return np.asarray(history, dtype=np.int64)[-self.config.max_len :] + 1

    @torch.no_grad()
    def _predict(self, users: np.ndarray, histories) -> np.ndarray:
        self.net_.eval()
        out = []
        for start in range(0, len(histories), SCORE_CHUNK):
            seqs = [self._score_input(h) for h in histories[start : start + SCORE_CHUNK]]
            lengths = torch.tensor([max(len(s), 1) for s in seqs], device=self.device_)
            padded = pad_right([s if len(s) else np.zeros(1, dtype=np.int64) for s in seqs]).to(self.device_)
            hidden = self.net_(padded)[torch.arange(len(seqs), device=self.device_), lengths - 1]
            out.append(self.net_.logits(hidden).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.net_.bias.shape[0]), dtype=np.float32)

    def _score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        return self._predict(users, histories)
