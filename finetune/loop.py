"""The update loop the ranker and explainer tuners share: resume, time budget, skipped updates, progress
bar, periodic validation and checkpoints. Each tuner supplies its update and its validation."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from finetune import checkpoint as ckpt
from finetune.checkpoint import RunState
from finetune.config import LoraTrainConfig

log = logging.getLogger(__name__)

LOG_EVERY = 5  # updates between loss lines in the log (the progress bar shows every one)


class TrainingLoop:
    """Base of ``FineTuner`` and ``ExplainTuner``; subclasses set ``accelerator``, ``model``, ``optimizer``."""

    bar_label = "finetune"
    accelerator: Any
    model: Any
    optimizer: Any

    def __init__(self, cfg: LoraTrainConfig, out: Path, config_path: str | None = None) -> None:
        self.cfg = cfg
        self.out = Path(out)
        self.config_path = config_path
        self.resumed_at: int | None = None  # the checkpoint's step, until the first update after it

    @property
    def peft_model(self) -> Any:
        return self.accelerator.unwrap_model(self.model)

    # What a tuner supplies ------------------------------------------------------------------------
    def train_update(self, step: int) -> tuple[float, bool]:
        """One optimizer update: the mean loss and whether it was applied."""
        raise NotImplementedError

    def evaluate_during(self, state: RunState, loss: float) -> None:
        """Validation every ``eval_every`` updates."""
        raise NotImplementedError

    def early_stop(self, state: RunState) -> str:
        """A reason to stop before the next update ("" = go on); the time budget is checked after it."""
        return ""

    def after_loop(self, state: RunState) -> None:
        """Work once the updates are done, before the last checkpoint."""

    # The loop -------------------------------------------------------------------------------------
    def save(self, state: RunState) -> None:
        ckpt.save_checkpoint(self.out, self.peft_model, self.optimizer, vars(state).copy())

    def resumed_state(self, resume: bool) -> RunState | None:
        """The checkpoint's state when resuming from one (weights and optimizer loaded), else None."""
        saved = ckpt.read_state(self.out) if resume else None
        if saved is None:
            if resume:
                log.warning("no checkpoint in %s; starting a new run", ckpt.checkpoint_dir(self.out))
            ckpt.discard_checkpoint(self.out)
            return None
        ckpt.check_compatible(saved.get("config", {}), self.cfg.to_dict())
        state = RunState.from_dict(ckpt.load_checkpoint(self.out, self.peft_model, self.optimizer))
        state.config, state.stop_reason = self.cfg.to_dict(), ""
        self.resumed_at = state.step
        return state

    def loop(self, state: RunState) -> None:
        from llmrec.progress import progress_bar

        cfg = self.cfg
        clock, base_elapsed = time.monotonic(), state.elapsed
        bar = progress_bar(self.bar_label, total=cfg.max_steps, unit="step")
        bar.update(state.step)
        try:
            while state.step < cfg.max_steps:
                state.stop_reason = self.early_stop(state)
                if not state.stop_reason and cfg.max_seconds and state.elapsed >= cfg.max_seconds:
                    state.stop_reason = f"time budget of {cfg.max_seconds:g} s reached"
                if state.stop_reason:
                    break
                if self.resumed_at is not None:
                    state.resumed_from.append(self.resumed_at)
                    self.resumed_at = None
                tick = time.monotonic()
                state.step += 1
                loss, applied = self.train_update(state.step)
                if not applied:
                    state.skipped_updates.append(state.step)
                state.train_seconds += time.monotonic() - tick
                state.losses.append([state.step, round(loss, 5)])
                if state.step == 1 or state.step % LOG_EVERY == 0:
                    log.info("step %d/%d: loss %.4f, %.1f s per step", state.step, cfg.max_steps, loss,
                             state.train_seconds / max(1, len(state.losses)))  # fmt: skip
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")
                state.elapsed = base_elapsed + time.monotonic() - clock
                if cfg.eval_every and state.step % cfg.eval_every == 0:
                    self.evaluate_during(state, loss)
                    state.elapsed = base_elapsed + time.monotonic() - clock
                    self.save(state)
            else:
                state.stop_reason = f"max_steps={cfg.max_steps} reached"
        finally:
            bar.close()
        self.after_loop(state)
        state.elapsed = base_elapsed + time.monotonic() - clock
        self.save(state)
        log.info("training stopped at step %d (%s)", state.step, state.stop_reason)
