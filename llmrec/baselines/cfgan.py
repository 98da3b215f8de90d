"""CFGAN (Chae et al., CIKM 2018): a conditional GAN that generates a user's purchase vector.

The generator G maps the condition ``c_u`` -- the user's binary history vector over all items -- to
a real-valued purchase vector ``r_hat_u`` in [0, 1]^n_items (MLP, sigmoid output). The
discriminator D sees a purchase vector next to the same condition and tells real
(``r_u = c_u``) from generated. This is the paper's "ZP" variant:

- partial masking (PM): D judges ``r_hat_u * (e_u + k_u)``, where ``e_u`` marks the user's items
  and ``k_u`` a random ``pm_ratio`` share of the others -- so G cannot win by outputting all ones;
- zero reconstruction (ZR): G also pays ``zr_weight * sum (r_hat_uj)^2`` over a random
  ``zr_ratio`` share of the unobserved items, pushing them towards 0.

Each epoch makes ``d_steps`` discriminator passes, then ``g_steps`` generator passes over all users
in shuffled batches of ``batch_size``; the masks are redrawn per batch. G and D have their own Adam.
G minimises the non-saturating ``-log D(fake)`` rather than the paper's ``log(1 - D(fake))``. On
ml-latest-small, one G pass per D pass let D win (G's loss climbed, validation NDCG fell to the
popularity level); five G passes per D pass (as in public re-implementations) and ``zr_weight=1``
train stably -- see BENCHMARKS-neural.md.
Scores are ``G(c_u)``: they depend only on the history, so users the model never saw need no
fold-in -- their history vector is the condition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from llmrec.baselines.base import RUNTIME, Scorer, TrainData, check, history_matrix
from llmrec.baselines.training import Trainer, TrainingConfig, fingerprint, fit_data

SCORE_CHUNK = 512


@dataclass(frozen=True)
class CFGANConfig(TrainingConfig):
    model: ClassVar[str] = "cfgan"

    hidden: int = 256  # width of the hidden layers of G and D
    g_layers: int = 1
    d_layers: int = 1
    zr_ratio: float = 0.7  # share of unobserved items in the zero-reconstruction penalty
    pm_ratio: float = 0.7  # share of unobserved items unmasked for the discriminator
    zr_weight: float = 1.0
    g_steps: int = 5  # generator passes per epoch: with one, D wins and G collapses to popularity
    d_steps: int = 1
    dropout: float = 0.0
    epochs: int = 200
    patience: int = 4
    eval_every: int = 5
    learning_rate: float = 1e-3
    batch_size: int = 64
    max_seconds: float | None = field(default=300.0, metadata=RUNTIME)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.hidden > 0, f"cfgan: hidden must be > 0, got {self.hidden}")
        check(self.g_layers >= 1 and self.d_layers >= 1, "cfgan: g_layers and d_layers must be >= 1")
        for name in ("zr_ratio", "pm_ratio"):
            value = getattr(self, name)
            check(0 <= value <= 1, f"cfgan: {name} must be in [0, 1], got {value}")
        check(self.zr_weight >= 0, f"cfgan: zr_weight must be >= 0, got {self.zr_weight}")
        check(self.g_steps >= 1 and self.d_steps >= 1, "cfgan: g_steps and d_steps must be >= 1")
        check(0 <= self.dropout < 1, f"cfgan: dropout must be in [0, 1), got {self.dropout}")


def mlp(inputs: int, hidden: int, layers: int, outputs: int, dropout: float) -> nn.Sequential:
    modules: list[nn.Module] = []
    width = inputs
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    return nn.Sequential(*modules, nn.Linear(width, outputs))


class CFGANNet(nn.Module):
    def __init__(self, n_items: int, cfg: CFGANConfig) -> None:
        super().__init__()
        self.generator = mlp(n_items, cfg.hidden, cfg.g_layers, n_items, cfg.dropout)
        self.discriminator = mlp(2 * n_items, cfg.hidden, cfg.d_layers, 1, cfg.dropout)

    def generate(self, condition: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.generator(condition))

    def judge(self, vector: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Discriminator logits (real > 0)."""
        return self.discriminator(torch.cat([vector, condition], dim=1)).squeeze(1)


class CFGAN(Scorer):
    name = "cfgan"
    Config = CFGANConfig

    def _fit(self, train: TrainData) -> None:
        cfg = self.config
        train = fit_data(train, cfg)
        trainer = Trainer(cfg, train.seed, fingerprint(self.hyperparameters(), train))
        self.device_ = trainer.device
        net = trainer.prepare(CFGANNet(train.n_items, cfg))
        self.net_ = net
        g_optimizer = trainer.adamw(net.generator.parameters())
        d_optimizer = trainer.adamw(net.discriminator.parameters())
        (matrix,) = trainer.to_device(torch.from_numpy(train.user_items.toarray()))
        active = np.flatnonzero(np.diff(train.user_items.indptr) > 0)  # users with a history

        def masks(real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            unobserved = real == 0
            zr = (torch.rand(real.shape, device=real.device) < cfg.zr_ratio) & unobserved
            pm = (torch.rand(real.shape, device=real.device) < cfg.pm_ratio) & unobserved
            return zr.float(), pm.float()

        def generator_step(real: torch.Tensor) -> float:
            zr, pm = masks(real)
            fake = net.generate(real)
            judged = net.judge(fake * (real + pm), real)
            adversarial = F.binary_cross_entropy_with_logits(judged, torch.ones_like(judged))
            reconstruction = ((fake * zr) ** 2).sum(1).mean()
            return trainer.step(adversarial + cfg.zr_weight * reconstruction, g_optimizer)

        def discriminator_step(real: torch.Tensor) -> float:
            _, pm = masks(real)
            with torch.no_grad():
                fake = net.generate(real) * (real + pm)
            real_logits, fake_logits = net.judge(real, real), net.judge(fake, real)
            loss = F.binary_cross_entropy_with_logits(
                real_logits, torch.ones_like(real_logits)
            ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
            return trainer.step(loss, d_optimizer)

        def run_epoch(epoch: int, rng: np.random.Generator) -> float:
            def passes(steps: int, step) -> list[float]:
                losses = []
                for _ in range(steps):
                    order = torch.from_numpy(rng.permutation(active)).to(self.device_)
                    for start in range(0, len(order), cfg.batch_size):
                        losses.append(step(matrix[order[start : start + cfg.batch_size]]))
                return losses

            passes(cfg.d_steps, discriminator_step)
            return float(np.mean(passes(cfg.g_steps, generator_step)))  # the generator's loss

        evaluate = None
        if train.validation is not None:
            validation = train.validation
            evaluate = lambda: validation.evaluate(self._predict)  # noqa: E731
        self.train_result_ = trainer.fit(net, run_epoch, evaluate)
        self.best_epoch_ = self.train_result_.best_epoch

    @torch.no_grad()
    def _predict(self, users: np.ndarray, histories) -> np.ndarray:
        self.net_.eval()
        n_items = self.net_.generator[-1].out_features
        out = np.empty((len(histories), n_items), dtype=np.float32)
        for start in range(0, len(histories), SCORE_CHUNK):
            block = list(histories[start : start + SCORE_CHUNK])
            condition = torch.from_numpy(history_matrix(block, n_items).toarray()).to(self.device_)
            out[start : start + len(block)] = self.net_.generator(condition).float().cpu().numpy()
        return out

    def _score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        return self._predict(users, histories)
