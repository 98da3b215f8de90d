"""BPR-MF (Rendle et al., 2009) in torch: our own, seeded, with vectorised minibatches.

Each epoch visits every (user, positive item) pair once in a seeded random order, pairs it with a
uniformly drawn negative item the user has not interacted with (redrawn up to a few times), and
minimises -log sigmoid(x_ui - x_uj) + reg * (|u|^2 + |v_i|^2 + |v_j|^2) with Adam. x_ui = u.v_i + b_i.
Known users use their learned factor; unknown users are folded in by minimising the same BPR loss
over the user vector alone, item factors fixed (``fold_in_bpr``; least squares on 0/1 targets is a
poor fit here because BPR scores are not calibrated to 1, so the folded-in vector comes out too
short and the item bias swamps it). torch is imported only when fitting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llmrec.baselines.base import RUNTIME, UNKNOWN_USER, Scorer, TrainData, check

NEGATIVE_REDRAWS = 5
FOLD_IN_NEGATIVES = 1000  # negatives per folded-in history (all of them when the catalogue is smaller)


@dataclass(frozen=True)
class BPRConfig:
    factors: int = 64
    learning_rate: float = 0.005  # Adam
    regularization: float = 1e-4  # per-triple L2 on the embeddings involved
    epochs: int = 30
    batch_size: int = 2048
    fold_in_regularization: float = 0.01  # L2 on a folded-in user vector
    num_threads: int = field(default=1, metadata=RUNTIME)  # torch intra-op threads while fitting

    def __post_init__(self) -> None:
        check(self.factors > 0, f"bpr: factors must be > 0, got {self.factors}")
        check(self.learning_rate > 0, f"bpr: learning_rate must be > 0, got {self.learning_rate}")
        check(self.regularization >= 0, f"bpr: regularization must be >= 0, got {self.regularization}")
        check(self.epochs > 0, f"bpr: epochs must be > 0, got {self.epochs}")
        check(self.batch_size > 0, f"bpr: batch_size must be > 0, got {self.batch_size}")
        check(self.num_threads > 0, f"bpr: num_threads must be > 0, got {self.num_threads}")


def sample_negatives(
    rng: np.random.Generator, users: np.ndarray, positive_keys: np.ndarray, n_items: int
) -> np.ndarray:
    """One uniform negative item per user, redrawn while it is a positive (``positive_keys`` sorted)."""
    negatives = rng.integers(0, n_items, size=len(users))
    for _ in range(NEGATIVE_REDRAWS):
        keys = users * n_items + negatives
        where = np.minimum(np.searchsorted(positive_keys, keys), len(positive_keys) - 1)
        bad = positive_keys[where] == keys
        if not bad.any():
            break
        negatives[bad] = rng.integers(0, n_items, size=int(bad.sum()))
    return negatives


def fold_in_bpr(
    item_factors: np.ndarray,
    item_bias: np.ndarray,
    histories: list[np.ndarray],
    regularization: float,
    max_negatives: int = FOLD_IN_NEGATIVES,
) -> np.ndarray:
    """User vectors minimising the BPR loss of each history (L-BFGS from zero, item factors fixed).

    loss(u) = -mean_{i in h, j in N} log sigmoid(x_i - x_j) + reg |u|^2 with x = V u + b, where N is
    every item outside h or, for large catalogues, a fixed-seed uniform sample of ``max_negatives``
    of them. Deterministic; an empty history gives the zero vector (scores = item bias).
    """
    from scipy.optimize import minimize

    factors = np.asarray(item_factors, dtype=np.float32)
    bias = np.asarray(item_bias, dtype=np.float32)
    out = np.zeros((len(histories), factors.shape[1]), dtype=np.float32)
    for row, history in enumerate(histories):
        positive = np.zeros(len(bias), dtype=bool)
        positive[np.asarray(history, dtype=np.int64)] = True
        negatives = np.flatnonzero(~positive)
        if not positive.any() or not len(negatives):
            continue
        if len(negatives) > max_negatives:
            negatives = np.sort(np.random.default_rng(0).choice(negatives, max_negatives, replace=False))
        pos, neg = factors[positive], factors[negatives]
        pos_bias, neg_bias = bias[positive], bias[negatives]
        n_pairs = float(len(pos) * len(neg))

        def loss_and_grad(u, pos=pos, neg=neg, pos_bias=pos_bias, neg_bias=neg_bias, n_pairs=n_pairs):
            u32 = u.astype(np.float32)
            margin = (pos @ u32 + pos_bias)[:, None] - (neg @ u32 + neg_bias)[None, :]
            sig = 0.5 * (1.0 + np.tanh(0.5 * margin))  # sigmoid(margin), overflow-free
            loss = -np.log(np.maximum(sig, 1e-30)).sum() / n_pairs + regularization * float(u @ u)
            weight = 1.0 - sig
            grad = -(pos.T @ weight.sum(axis=1) - neg.T @ weight.sum(axis=0)) / n_pairs
            return float(loss), grad.astype(np.float64) + 2 * regularization * u

        start = np.zeros(factors.shape[1])
        out[row] = minimize(loss_and_grad, start, jac=True, method="L-BFGS-B").x
    return out


class _Adam:
    """Adam (Kingma & Ba), the update of ``torch.optim.Adam`` with default betas, written out.

    torch.optim's first ``step()`` imports torch._dynamo, which costs seconds per process; this
    model needs nothing but the update itself.
    """

    def __init__(self, params: list, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        import torch

        self.params, self.lr, self.betas, self.eps, self.steps = params, lr, betas, eps, 0
        self.first = [torch.zeros_like(p) for p in params]
        self.second = [torch.zeros_like(p) for p in params]

    def step(self) -> None:
        import torch

        self.steps += 1
        beta1, beta2 = self.betas
        correction1, correction2 = 1 - beta1**self.steps, 1 - beta2**self.steps
        with torch.no_grad():
            for param, first, second in zip(self.params, self.first, self.second):
                grad = param.grad
                first.lerp_(grad, 1 - beta1)
                second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = (second.sqrt() / correction2**0.5).add_(self.eps)
                param.addcdiv_(first, denom, value=-self.lr / correction1)


class BPR(Scorer):
    name = "bpr"
    Config = BPRConfig

    def _fit(self, train: TrainData) -> None:
        import torch

        cfg = self.config
        coo = train.user_items.tocoo()
        users, items = coo.row.astype(np.int64), coo.col.astype(np.int64)
        positive_keys = np.sort(users * train.n_items + items)
        rng = np.random.default_rng(train.seed)
        generator = torch.Generator().manual_seed(train.seed)
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(cfg.num_threads)
        try:
            user_emb = (torch.randn(train.n_users, cfg.factors, generator=generator) * 0.01).requires_grad_()
            # item factors with the item bias as one more column: one gather per batch instead of four
            item_init = torch.randn(train.n_items, cfg.factors + 1, generator=generator) * 0.01
            item_init[:, -1] = 0.0
            item_table = item_init.requires_grad_()
            optimizer = _Adam([user_emb, item_table], cfg.learning_rate)
            users_t, items_t = torch.from_numpy(users), torch.from_numpy(items)
            for _ in range(cfg.epochs if len(users) else 0):
                order = torch.from_numpy(rng.permutation(len(users)))
                negatives_t = torch.from_numpy(sample_negatives(rng, users, positive_keys, train.n_items))
                for start in range(0, len(users), cfg.batch_size):
                    batch = order[start : start + cfg.batch_size]
                    u = user_emb.index_select(0, users_t[batch])
                    pair = item_table.index_select(0, torch.cat([items_t[batch], negatives_t[batch]]))
                    i, j = pair[: len(batch)], pair[len(batch) :]
                    diff = i - j
                    margin = (u * diff[:, :-1]).sum(1) + diff[:, -1]
                    penalty = (u.square().sum() + pair[:, :-1].square().sum()) / len(batch)
                    loss = -torch.nn.functional.logsigmoid(margin).mean() + cfg.regularization * penalty
                    user_emb.grad = item_table.grad = None
                    loss.backward()
                    optimizer.step()
        finally:
            torch.set_num_threads(previous_threads)
        self.user_factors_ = user_emb.detach().numpy().astype(np.float32)
        table = item_table.detach().numpy().astype(np.float32)
        self.item_factors_, self.item_bias_ = np.ascontiguousarray(table[:, :-1]), table[:, -1].copy()

    def _score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        factors = np.zeros((len(users), self.item_factors_.shape[1]), dtype=np.float32)
        known = users != UNKNOWN_USER
        factors[known] = self.user_factors_[users[known]]
        if (~known).any():
            unknown = np.flatnonzero(~known)
            factors[unknown] = fold_in_bpr(
                self.item_factors_, self.item_bias_, [histories[i] for i in unknown], self.config.fold_in_regularization
            )
        return factors @ self.item_factors_.T + self.item_bias_
