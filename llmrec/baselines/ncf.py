"""Neural collaborative filtering (He et al., 2017): GMF, MLP and their fusion NeuMF.

Each (user, item) pair is scored by
- ``gmf``: a learned weighting of the element-wise product of user and item embeddings,
- ``mlp``: an MLP (ReLU) over the concatenated user and item embeddings,
- ``neumf`` (default): both, with separate embeddings, concatenated into one output layer.
Training is pointwise: every observed pair is a positive and ``negatives`` items the user has not
interacted with (drawn uniformly per epoch) are negatives, with binary cross-entropy.

Scoring all items for a user never materialises (user, item) pairs for the first MLP layer: its
weight splits into a user half and an item half, computed once each and broadcast.

Users the model never saw (id -1) are folded in by *averaging the item embeddings of their
history* into a pseudo user vector (per embedding table). User and item embeddings are not trained
to live in one space, so this is a rough stand-in -- good enough to rank for a newcomer, weaker
than a trained user vector; an empty history gives the zero vector (item biases only).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from llmrec.baselines.base import RUNTIME, UNKNOWN_USER, Scorer, TrainData, check
from llmrec.baselines.bpr import sample_negatives
from llmrec.baselines.training import Trainer, TrainingConfig, fingerprint, fit_data

VARIANTS = ("gmf", "mlp", "neumf")
SCORE_CHUNK = 64  # users per block when scoring all items (the MLP sees chunk * n_items rows)


@dataclass(frozen=True)
class NCFConfig(TrainingConfig):
    model: ClassVar[str] = "ncf"

    variant: str = "neumf"
    factors: int = 32  # embedding size of each table (GMF, and MLP user/item)
    layers: tuple[int, ...] = (64, 32, 16)  # MLP hidden sizes after the concatenated embeddings
    negatives: int = 4  # sampled negatives per positive and epoch
    epochs: int = 40
    patience: int = 4
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 2048
    max_seconds: float | None = field(default=300.0, metadata=RUNTIME)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.variant in VARIANTS, f"ncf: variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        check(self.factors > 0, f"ncf: factors must be > 0, got {self.factors}")
        check(len(self.layers) > 0 and min(self.layers) > 0, f"ncf: layers must be positive sizes, got {self.layers}")
        check(self.negatives > 0, f"ncf: negatives must be > 0, got {self.negatives}")


class NCFNet(nn.Module):
    def __init__(self, n_users: int, n_items: int, cfg: NCFConfig) -> None:
        super().__init__()
        self.use_gmf, self.use_mlp = cfg.variant in ("gmf", "neumf"), cfg.variant in ("mlp", "neumf")
        width = 0
        if self.use_gmf:
            self.user_gmf, self.item_gmf = nn.Embedding(n_users, cfg.factors), nn.Embedding(n_items, cfg.factors)
            width += cfg.factors
        if self.use_mlp:
            self.user_mlp, self.item_mlp = nn.Embedding(n_users, cfg.factors), nn.Embedding(n_items, cfg.factors)
            self.first = nn.Linear(2 * cfg.factors, cfg.layers[0])
            sizes = cfg.layers
            self.tower = nn.Sequential(
                *(m for a, b in itertools.pairwise(sizes) for m in (nn.ReLU(), nn.Linear(a, b))), nn.ReLU()
            )
            width += sizes[-1]
        self.out = nn.Linear(width, 1)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.01)

    def user_vectors(self, users: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return (
            self.user_gmf(users) if self.use_gmf else None,
            self.user_mlp(users) if self.use_mlp else None,
        )

    def folded_vectors(self, histories: list[np.ndarray], device: torch.device):
        """Pseudo user vectors: the mean item embedding of each history (zeros when empty)."""
        out = []
        for table in (self.item_gmf if self.use_gmf else None, self.item_mlp if self.use_mlp else None):
            if table is None:
                out.append(None)
                continue
            vectors = torch.zeros(len(histories), table.embedding_dim, device=device)
            for row, history in enumerate(histories):
                if len(history):
                    vectors[row] = table.weight[torch.as_tensor(history, device=device)].mean(0)
            out.append(vectors)
        return tuple(out)

    def pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits of (users[k], items[k]) pairs."""
        u_gmf, u_mlp = self.user_vectors(users)
        parts = []
        if self.use_gmf:
            parts.append(u_gmf * self.item_gmf(items))
        if self.use_mlp:
            parts.append(self.tower(self.first(torch.cat([u_mlp, self.item_mlp(items)], dim=1))))
        return self.out(torch.cat(parts, dim=1)).squeeze(1) + self.item_bias[items]

    def all_items(self, u_gmf: torch.Tensor | None, u_mlp: torch.Tensor | None) -> torch.Tensor:
        """(batch, n_items) logits for the given user vectors."""
        weight, bias = self.out.weight[0], self.out.bias + self.item_bias
        logits = bias.expand(len(u_gmf if u_gmf is not None else u_mlp), -1)
        offset = 0
        if self.use_gmf:
            factors = self.item_gmf.embedding_dim
            logits = logits + u_gmf @ (self.item_gmf.weight * weight[:factors]).T
            offset = factors
        if self.use_mlp:
            factors = self.item_mlp.embedding_dim
            user_half = F.linear(u_mlp, self.first.weight[:, :factors], self.first.bias)
            item_half = F.linear(self.item_mlp.weight, self.first.weight[:, factors:])
            hidden = self.tower(user_half[:, None, :] + item_half[None, :, :])
            logits = logits + hidden @ weight[offset:]
        return logits


class NCF(Scorer):
    name = "ncf"
    Config = NCFConfig

    def _fit(self, train: TrainData) -> None:
        cfg = self.config
        train = fit_data(train, cfg)
        trainer = Trainer(cfg, train.seed, fingerprint(self.hyperparameters(), train))
        self.device_ = trainer.device
        self.net_ = trainer.prepare(NCFNet(train.n_users, train.n_items, cfg))
        optimizer = trainer.adamw(self.net_.parameters())
        coo = train.user_items.tocoo()
        users, items = coo.row.astype(np.int64), coo.col.astype(np.int64)
        positive_keys = np.sort(users * train.n_items + items)

        def batches(rng: np.random.Generator):
            repeated = np.repeat(users, cfg.negatives)
            negatives = sample_negatives(rng, repeated, positive_keys, train.n_items)
            all_users = np.concatenate([users, repeated])
            all_items = np.concatenate([items, negatives])
            labels = np.concatenate([np.ones(len(users)), np.zeros(len(repeated))]).astype(np.float32)
            order = rng.permutation(len(all_users))
            for start in range(0, len(order), cfg.batch_size):
                rows = order[start : start + cfg.batch_size]
                yield trainer.to_device(*(torch.from_numpy(a[rows]) for a in (all_users, all_items, labels)))

        def loss(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            u, i, y = batch
            return F.binary_cross_entropy_with_logits(self.net_.pairs(u, i), y)

        evaluate = None
        if train.validation is not None:
            validation = train.validation
            evaluate = lambda: validation.evaluate(self._predict)  # noqa: E731
        self.train_result_ = trainer.fit(
            self.net_, lambda epoch, rng: trainer.run_batches(batches(rng), loss, optimizer), evaluate
        )
        self.best_epoch_ = self.train_result_.best_epoch

    @torch.no_grad()
    def _predict(self, users: np.ndarray, histories) -> np.ndarray:
        net, device = self.net_, self.device_
        net.eval()
        users = np.asarray(users, dtype=np.int64)
        out = np.empty((len(users), net.item_bias.shape[0]), dtype=np.float32)
        for start in range(0, len(users), SCORE_CHUNK):
            block = users[start : start + SCORE_CHUNK]
            known = torch.as_tensor(block != UNKNOWN_USER, device=device)
            u_gmf, u_mlp = net.user_vectors(torch.as_tensor(np.maximum(block, 0), device=device))
            if not bool(known.all()):
                f_gmf, f_mlp = net.folded_vectors(list(histories[start : start + SCORE_CHUNK]), device)
                u_gmf = None if u_gmf is None else torch.where(known[:, None], u_gmf, f_gmf)
                u_mlp = None if u_mlp is None else torch.where(known[:, None], u_mlp, f_mlp)
            out[start : start + len(block)] = net.all_items(u_gmf, u_mlp).float().cpu().numpy()
        return out

    def _score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        return self._predict(users, histories)
