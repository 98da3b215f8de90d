"""The training loop every neural recommender shares (NCF, SASRec, LightGCN, CFGAN).

A model builds its network, asks a ``Trainer`` for device placement and optimizers, and hands
``Trainer.fit`` two callables: ``run_epoch(epoch, rng) -> mean loss`` and, when the fit data carries
a validation set, ``evaluate() -> NDCG@10``. The trainer owns everything else:

- device placement through ``accelerate.Accelerator`` (``device="auto"`` uses a GPU when present,
  ``"cpu"`` forces the CPU): the same code runs on either;
- seeding: python, numpy and torch from the fit seed at the start, and again per epoch from
  ``(seed, epoch)``, so a resumed run draws the same batches as an uninterrupted one;
- early stopping on validation NDCG@10 with ``patience`` (counted in evaluations), keeping the best
  weights, and a ``max_seconds`` wall-clock cap as a safety net;
- checkpoints in ``checkpoint_dir``: ``last.safetensors`` and ``best.safetensors`` (weights only,
  safetensors, no pickles) plus ``state.json`` (the model's fingerprint, epoch, best metric, history).
  The optimizer state is *not* stored, so ``resume=True`` continues from the last weights with a
  fresh optimizer (Adam's moments are rebuilt within a few steps). A checkpoint made with other
  hyper-parameters or data is refused; ``epochs``/``patience``/``max_seconds`` may change on resume.
  One process at a time trains into a folder (a hidden lock file in it); another waits, then resumes.

Fit data without a validation set (the harness's final fit on train+valid) gets one of its own when
``holdout=True`` (default): ``fit_data`` holds out each user's last item (users with at least
``HOLDOUT_MIN`` items) as the validation target and trains on the rest -- under leave-one-out that
is exactly LlamaRec's setting for its neural models (train on train, stop on valid, test with input
train+valid). With ``holdout=False`` the loop runs exactly ``epochs`` epochs (or until
``max_seconds``) and keeps the last weights; pass the ``best_epoch`` of a validated fit as ``epochs``.
torch and accelerate are imported only by the modules that train.

Threads: ``num_threads`` (default 1) is set for the fit and restored afterwards. On the shared
2-core benchmark machine one thread trained SASRec 3-5x faster than two: with more runnable threads
than cores, OpenMP's spin-waiting threads lose their time slices. Raise it on an idle machine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from llmrec.baselines.base import RUNTIME, TrainData, ValidationSet, check
from llmrec.errors import ConfigError
from llmrec.fileutil import atomic_file
from llmrec.progress import progress_bar

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
LAST_WEIGHTS = "last.safetensors"
BEST_WEIGHTS = "best.safetensors"
BUDGET_FIELDS = ("epochs", "patience")  # may change between a checkpoint and its resumption
HOLDOUT_MIN = 3  # users with fewer items keep them all for training


@dataclass(frozen=True)
class TrainingConfig:
    """Settings shared by every neural model; model configs subclass it and add their own."""

    model: ClassVar[str] = "neural"  # name used in error messages

    epochs: int = 100  # upper bound; early stopping usually ends sooner
    patience: int = 10  # evaluations without improvement before stopping; 0 never stops early
    holdout: bool = True  # no validation in the fit data: hold out each user's last item for early stopping
    eval_every: int = 1  # epochs between validation evaluations
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    max_seconds: float | None = field(default=None, metadata=RUNTIME)  # wall-clock cap on training
    device: str = field(default="auto", metadata=RUNTIME)  # "auto" (GPU when present) or "cpu"
    num_threads: int = field(default=1, metadata=RUNTIME)  # torch intra-op threads while training (see module doc)
    checkpoint_dir: str | None = field(default=None, metadata=RUNTIME)
    resume: bool = field(default=False, metadata=RUNTIME)  # continue from checkpoint_dir when it holds one

    def __post_init__(self) -> None:
        name = self.model
        check(self.epochs > 0, f"{name}: epochs must be > 0, got {self.epochs}")
        check(self.patience >= 0, f"{name}: patience must be >= 0, got {self.patience}")
        check(self.eval_every > 0, f"{name}: eval_every must be > 0, got {self.eval_every}")
        check(self.learning_rate > 0, f"{name}: learning_rate must be > 0, got {self.learning_rate}")
        check(self.weight_decay >= 0, f"{name}: weight_decay must be >= 0, got {self.weight_decay}")
        check(self.batch_size > 0, f"{name}: batch_size must be > 0, got {self.batch_size}")
        check(
            self.max_seconds is None or self.max_seconds > 0, f"{name}: max_seconds must be > 0, got {self.max_seconds}"
        )
        check(self.device in ("auto", "cpu"), f"{name}: device must be 'auto' or 'cpu', got {self.device!r}")
        check(self.num_threads > 0, f"{name}: num_threads must be > 0, got {self.num_threads}")
        check(not self.resume or bool(self.checkpoint_dir), f"{name}: resume=True needs a checkpoint_dir")


@dataclass
class TrainResult:
    """How a fit went: epochs run, where the best validation score was, and why it stopped."""

    epochs_run: int = 0
    best_epoch: int = 0  # 1-based; the last epoch when there was no validation
    best_metric: float | None = None  # validation NDCG@10 of the kept weights
    stopped: str = "epochs"  # "epochs" | "patience" | "time"
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: loss and, when evaluated, ndcg


def fit_data(train: TrainData, cfg: TrainingConfig) -> TrainData:
    """``train`` itself when it has validation (or ``holdout`` is off), else a last-item hold-out split of it."""
    if train.validation is not None or not cfg.holdout:
        return train
    lengths = np.array([len(h) for h in train.histories])
    held = np.flatnonzero(lengths >= HOLDOUT_MIN)
    if not len(held):
        return train
    keep = lengths.copy()
    keep[held] -= 1
    histories = tuple(h[:n] for h, n in zip(train.histories, keep))
    cut = None if train.ratings is None else tuple(r[:n] for r, n in zip(train.ratings, keep))
    stamps = None if train.timestamps is None else tuple(t[:n] for t, n in zip(train.timestamps, keep))
    validation = ValidationSet(
        held.astype(np.int64), tuple(histories[u] for u in held), tuple(train.histories[u][-1:] for u in held)
    )
    return TrainData(train.n_users, train.n_items, histories, cut, stamps, train.seed, validation)


def fingerprint(hyperparameters: dict[str, Any], train: TrainData) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: the model's settings and the shape of its fit data."""
    shape = {"n_users": train.n_users, "n_items": train.n_items, "n_interactions": train.n_interactions}
    return {**hyperparameters, **shape, "seed": train.seed}


def seed_everything(seed: int) -> None:
    """Seed python, numpy's global state and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def state_dict_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def _lock_file(folder: Path) -> str:
    # inside the folder, hidden: the folders around it stay one per checkpoint; shipping copies named files only
    return str(folder / ".train.lock")


@contextlib.contextmanager
def training_lock(folder: Path | None, name: str) -> Iterator[None]:
    """One process at a time trains into a checkpoint folder. Two writing one folder would interleave their
    epochs' weights and states; with the lock the second waits, then resumes the first's checkpoint (complete:
    it loads it and trains nothing)."""
    if folder is None:
        yield
        return
    from filelock import FileLock, Timeout  # a dependency of torch and huggingface_hub

    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(_lock_file(folder))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("%s: another process is training into %s; waiting for it to finish", name, folder)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def training_elsewhere(folder: Path) -> bool:
    """True while another process holds ``folder``'s training lock (an ensemble fits other members meanwhile)."""
    from filelock import FileLock, Timeout

    if not folder.is_dir():
        return False
    lock = FileLock(_lock_file(folder))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


class Trainer:
    """Device, seeds, optimizers and the epoch loop for one fit."""

    def __init__(self, cfg: TrainingConfig, seed: int, identity: dict[str, Any]) -> None:
        from accelerate import Accelerator

        self.cfg, self.seed, self.name = cfg, seed, cfg.model
        self.fingerprint = json.loads(json.dumps({k: v for k, v in identity.items() if k not in BUDGET_FIELDS}))
        self.previous_threads = torch.get_num_threads()  # restored when fit() returns
        torch.set_num_threads(cfg.num_threads)
        self.accelerator = Accelerator(cpu=cfg.device == "cpu")
        self.device = self.accelerator.device
        seed_everything(seed)

    # Set-up -----------------------------------------------------------------------------------
    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        return self.accelerator.prepare_model(model)

    def adamw(self, params: Iterable[torch.nn.Parameter], lr: float | None = None, weight_decay: float | None = None):
        cfg = self.cfg
        optimizer = torch.optim.AdamW(
            list(params),
            lr=cfg.learning_rate if lr is None else lr,
            weight_decay=cfg.weight_decay if weight_decay is None else weight_decay,
        )
        return self.accelerator.prepare_optimizer(optimizer)

    def to_device(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t.to(self.device, non_blocking=True) for t in tensors)

    # Steps ------------------------------------------------------------------------------------
    def step(self, loss: torch.Tensor, optimizer: Any) -> float:
        """One optimisation step on ``loss``; returns its value."""
        optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        optimizer.step()
        return float(loss.detach())

    def run_batches(self, batches: Iterable[Any], loss_fn: Callable[[Any], torch.Tensor], optimizer: Any) -> float:
        """One epoch of plain minibatch training; the mean batch loss."""
        total, count = 0.0, 0
        for batch in batches:
            total += self.step(loss_fn(batch), optimizer)
            count += 1
        return total / max(count, 1)

    # The loop ---------------------------------------------------------------------------------
    def fit(
        self,
        model: torch.nn.Module,
        run_epoch: Callable[[int, np.random.Generator], float],
        evaluate: Callable[[], float] | None = None,
    ) -> TrainResult:
        """Train ``model`` in place; on return it holds the best (or, without validation, last) weights."""
        folder = Path(self.cfg.checkpoint_dir) if self.cfg.checkpoint_dir else None
        with training_lock(folder, self.name):
            return self._fit(model, folder, run_epoch, evaluate)

    def _fit(
        self,
        model: torch.nn.Module,
        folder: Path | None,
        run_epoch: Callable[[int, np.random.Generator], float],
        evaluate: Callable[[], float] | None,
    ) -> TrainResult:
        cfg, started = self.cfg, time.monotonic()
        result, best_state, bad_evals = TrainResult(), None, 0
        if cfg.resume and folder is not None and (folder / STATE_FILE).is_file():
            result, best_state, bad_evals = self._load(folder, model)
            if self._finished(result, bad_evals, evaluate is not None):
                log.info("%s: checkpoint in %s is complete (%s); not training", self.name, folder, result.stopped)
                torch.set_num_threads(self.previous_threads)
                self._restore(model, best_state)
                return result
        elapsed_before = result.seconds
        bar = progress_bar(self.name, total=cfg.epochs, unit="epoch")
        bar.update(result.epochs_run)
        try:
            for epoch in range(result.epochs_run + 1, cfg.epochs + 1):
                seed = epoch_seed(self.seed, epoch)
                torch.manual_seed(seed)
                model.train()
                loss = float(run_epoch(epoch, np.random.default_rng(seed)))
                if not math.isfinite(loss):
                    raise ConfigError(f"{self.name}: loss became {loss} in epoch {epoch}; lower learning_rate")
                record: dict[str, float] = {"epoch": epoch, "loss": loss}
                result.epochs_run = epoch
                if evaluate is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                    model.eval()
                    with torch.no_grad():
                        metric = float(evaluate())
                    record["ndcg@10"] = metric
                    if result.best_metric is None or metric > result.best_metric:
                        result.best_metric, result.best_epoch, bad_evals = metric, epoch, 0
                        best_state = state_dict_copy(model)
                    else:
                        bad_evals += 1
                elif evaluate is None:
                    result.best_epoch = epoch
                result.history.append(record)
                result.seconds = elapsed_before + time.monotonic() - started
                bar.update(1)
                bar.set_postfix(
                    loss=f"{loss:.4f}", **({"ndcg": f"{record['ndcg@10']:.4f}"} if "ndcg@10" in record else {})
                )
                log.debug("%s epoch %d: %s", self.name, epoch, record)
                if evaluate is not None and cfg.patience and bad_evals >= cfg.patience:
                    result.stopped = "patience"
                elif cfg.max_seconds is not None and time.monotonic() - started >= cfg.max_seconds:
                    result.stopped = "time"
                    log.warning("%s: stopped by max_seconds=%s after epoch %d", self.name, cfg.max_seconds, epoch)
                else:
                    result.stopped = "epochs"
                if folder is not None:
                    self._save(folder, model, best_state, result, bad_evals)
                if result.stopped != "epochs":
                    break
        finally:
            bar.close()
            torch.set_num_threads(self.previous_threads)
        self._restore(model, best_state)
        log.info(
            "%s: %d epochs in %.1fs (%s), best epoch %d, validation ndcg@10 %s",
            self.name, result.epochs_run, result.seconds, result.stopped, result.best_epoch, result.best_metric,
        )  # fmt: skip
        return result

    def _finished(self, result: TrainResult, bad_evals: int, validating: bool) -> bool:
        if result.epochs_run >= self.cfg.epochs:
            return True
        return (
            result.stopped == "patience" and validating and bool(self.cfg.patience) and bad_evals >= self.cfg.patience
        )

    def _restore(self, model: torch.nn.Module, state: dict[str, torch.Tensor] | None) -> None:
        if state is not None:
            model.load_state_dict({k: v.to(self.device) for k, v in state.items()})
        model.eval()

    # Checkpoints ------------------------------------------------------------------------------
    def _save(
        self,
        folder: Path,
        model: torch.nn.Module,
        best_state: dict[str, torch.Tensor] | None,
        result: TrainResult,
        bad_evals: int,
    ) -> None:
        from safetensors.torch import save_file

        with atomic_file(folder / LAST_WEIGHTS) as tmp:
            save_file(state_dict_copy(model), str(tmp))
        if best_state is not None and result.best_epoch == result.epochs_run:
            with atomic_file(folder / BEST_WEIGHTS) as tmp:
                save_file(best_state, str(tmp))
        state = {
            "model": self.name,
            "fingerprint": self.fingerprint,
            "bad_evals": bad_evals,
            "optimizer": "not stored; resume restarts the optimizer",
            **asdict(result),
        }
        with atomic_file(folder / STATE_FILE) as tmp:
            tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")

    def _load(self, folder: Path, model: torch.nn.Module) -> tuple[TrainResult, dict[str, torch.Tensor] | None, int]:
        from safetensors.torch import load_file

        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        if state.get("model") != self.name or state.get("fingerprint") != self.fingerprint:
            raise ConfigError(
                f"{self.name}: checkpoint in {folder} was made by {state.get('model')!r} with "
                f"{state.get('fingerprint')}; this fit has {self.fingerprint}. "
                "Use another checkpoint_dir or resume=False"
            )
        model.load_state_dict({k: v.to(self.device) for k, v in load_file(str(folder / LAST_WEIGHTS)).items()})
        best = load_file(str(folder / BEST_WEIGHTS)) if (folder / BEST_WEIGHTS).is_file() else None
        fields = {k: state[k] for k in ("epochs_run", "best_epoch", "best_metric", "stopped", "seconds", "history")}
        log.info("%s: resuming from %s after epoch %d (fresh optimizer)", self.name, folder, fields["epochs_run"])
        return TrainResult(**fields), best, int(state.get("bad_evals", 0))
