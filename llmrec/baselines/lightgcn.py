"""LightGCN (He et al., 2020): linear propagation of embeddings over the user-item graph.

The graph is the bipartite user-item adjacency with symmetric normalisation
``A_hat = D^-1/2 A D^-1/2``. Starting from free ("ego") embeddings ``E0`` for users and items, each
layer is ``E_{k+1} = A_hat E_k`` (no weights, no nonlinearity) and the final embedding is the mean of
``E0 .. E_layers``; a (user, item) score is the dot product of the final embeddings. Training is BPR
with one uniformly drawn negative per observed pair and epoch, plus L2 on the ego embeddings of the
batch (as in the paper's reference code), with Adam; the whole graph is propagated for every batch.

Users the model never saw (id -1) are folded in through the items they interacted with: their
vector is the mean of the propagated (final) item embeddings of their history -- the embedding
a new user node would get from one propagation step, without its degree normalisation; an empty
history gives the zero vector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from scipy import sparse
from torch import nn
from torch.nn import functional as F

from llmrec.baselines.base import RUNTIME, UNKNOWN_USER, Scorer, TrainData, check
from llmrec.baselines.bpr import sample_negatives
from llmrec.baselines.training import Trainer, TrainingConfig, fingerprint, fit_data


@dataclass(frozen=True)
class LightGCNConfig(TrainingConfig):
    model: ClassVar[str] = "lightgcn"

    factors: int = 64
    layers: int = 3
    regularization: float = 1e-4  # L2 on the batch's ego embeddings, averaged over the batch
    epochs: int = 300
    patience: int = 5
    eval_every: int = 5
    learning_rate: float = 1e-2
    batch_size: int = 2048
    max_seconds: float | None = field(default=300.0, metadata=RUNTIME)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.factors > 0, f"lightgcn: factors must be > 0, got {self.factors}")
        check(self.layers >= 0, f"lightgcn: layers must be >= 0, got {self.layers}")
        check(self.regularization >= 0, f"lightgcn: regularization must be >= 0, got {self.regularization}")


def normalized_adjacency(user_items: sparse.csr_matrix) -> torch.Tensor:
    """Sparse (n_users + n_items) square ``D^-1/2 A D^-1/2`` of the bipartite graph, as a torch COO tensor."""
    n_users, n_items = user_items.shape
    graph = sparse.bmat([[None, user_items], [user_items.T, None]], format="csr", dtype=np.float32)
    graph.resize((n_users + n_items, n_users + n_items))
    degree = np.asarray(graph.sum(axis=1)).ravel()
    inv_sqrt = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
    norm = (sparse.diags(inv_sqrt) @ graph @ sparse.diags(inv_sqrt)).tocsr().astype(np.float32)
    coo = norm.tocoo()
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    return torch.sparse_coo_tensor(indices, torch.from_numpy(coo.data), coo.shape, check_invariants=False).coalesce()


class LightGCNNet(nn.Module):
    def __init__(self, n_users: int, n_items: int, cfg: LightGCNConfig) -> None:
        super().__init__()
        self.n_users, self.layers = n_users, cfg.layers
        self.ego = nn.Embedding(n_users + n_items, cfg.factors)
        nn.init.normal_(self.ego.weight, std=0.1)
        self.graph: torch.Tensor | None = None  # set by the scorer; not a buffer (safetensors cannot hold it)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (mean over layers) user and item embeddings."""
        layer = self.ego.weight
        total = layer
        for _ in range(self.layers):
            layer = self.graph @ layer
            total = total + layer
        final = total / (self.layers + 1)
        return final[: self.n_users], final[self.n_users :]


class LightGCN(Scorer):
    name = "lightgcn"
    Config = LightGCNConfig

    def _fit(self, train: TrainData) -> None:
        cfg = self.config
        train = fit_data(train, cfg)
        trainer = Trainer(cfg, train.seed, fingerprint(self.hyperparameters(), train))
        self.device_ = trainer.device
        net = trainer.prepare(LightGCNNet(train.n_users, train.n_items, cfg))
        net.graph = normalized_adjacency(train.user_items).to(self.device_)
        self.net_ = net
        optimizer = trainer.adamw(net.parameters(), weight_decay=0.0)  # L2 is in the loss, on the batch
        coo = train.user_items.tocoo()
        users, items = coo.row.astype(np.int64), coo.col.astype(np.int64)
        positive_keys = np.sort(users * train.n_items + items)

        def batches(rng: np.random.Generator):
            negatives = sample_negatives(rng, users, positive_keys, train.n_items)
            order = rng.permutation(len(users))
            for start in range(0, len(order), cfg.batch_size):
                rows = order[start : start + cfg.batch_size]
                yield trainer.to_device(*(torch.from_numpy(a[rows]) for a in (users, items, negatives)))

        def loss(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            u, i, j = batch
            user_final, item_final = net.propagate()
            uf = user_final[u]
            margin = (uf * item_final[i]).sum(1) - (uf * item_final[j]).sum(1)
            ego = net.ego.weight
            penalty = sum(ego[rows].square().sum() for rows in (u, net.n_users + i, net.n_users + j))
            return -F.logsigmoid(margin).mean() + cfg.regularization * penalty / (2 * len(u))

        evaluate = None
        if train.validation is not None:
            validation = train.validation

            def evaluate() -> float:
                self._cache()
                return validation.evaluate(self._predict)

        self.train_result_ = trainer.fit(
            net, lambda epoch, rng: trainer.run_batches(batches(rng), loss, optimizer), evaluate
        )
        self.best_epoch_ = self.train_result_.best_epoch
        self._cache()

    @torch.no_grad()
    def _cache(self) -> None:
        self.net_.eval()
        users, items = self.net_.propagate()
        self.user_factors_ = users.float().cpu().numpy()
        self.item_factors_ = items.float().cpu().numpy()

    def _predict(self, users: np.ndarray, histories) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        factors = np.zeros((len(users), self.item_factors_.shape[1]), dtype=np.float32)
        known = users != UNKNOWN_USER
        factors[known] = self.user_factors_[users[known]]
        for row in np.flatnonzero(~known):
            history = np.unique(np.asarray(histories[row], dtype=np.int64))
            if len(history):
                factors[row] = self.item_factors_[history].mean(axis=0)
        return factors @ self.item_factors_.T

    def _score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        return self._predict(users, histories)
