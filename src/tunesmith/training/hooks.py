"""Ways for a caller (the service's worker) to follow a training run and stop it.

The loop calls these at fixed points; the defaults do nothing, so the command line pays nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class TrainingStopped(Exception):
    """Raised inside `train()` when `TrainHooks.should_stop` says so (a cancelled job). The run
    folder keeps its last complete checkpoint."""


class TrainingPaused(Exception):
    """Raised inside `train()` when `TrainHooks.should_pause` says so (a paused job), after a
    checkpoint of the current step is saved: `train(..., resume=True)` continues from it."""


@dataclass
class TrainHooks:
    on_start: Callable[[dict], None] = lambda resolved: None
    """Called once with the resolved config (as config.yaml holds it) before the first step."""
    on_record: Callable[[dict], None] = lambda entry: None
    """Called with every metrics.jsonl record (steps, validation), rank 0 only."""
    on_checkpoint: Callable[[int, int, Path, dict], None] = lambda epoch, step, path, metrics: None
    """Called after each epoch's checkpoint is complete: (epoch, step, its folder, the epoch's
    latest metrics)."""
    on_epoch_end: Callable[[int, object, object, Callable], None] = \
        lambda epoch, model, tokenizer, autocast: None
    """Called after each epoch's checkpoint with the live model (rank 0): (epoch, model,
    tokenizer, a context-manager factory the model's forward passes must run under).
    `train --tune` measures the validation metric here."""
    should_stop: Callable[[], bool] = lambda: False
    """Polled after every optimizer step: True raises `TrainingStopped` (a cancelled job)."""
    should_pause: Callable[[], bool] = lambda: False
    """Polled right after `should_stop`, after every optimizer step but an epoch's last (whose
    epoch-end checkpoint follows): True saves a checkpoint of that step and raises
    `TrainingPaused` (a paused job)."""
    end_training: Callable[[], bool] = lambda: False
    """Polled at every epoch end: True ends the run there, as if it were the last epoch
    (final/ is written from the current weights). Early stopping uses it."""
    on_finish: Callable[[], None] = lambda: None
    """Called once when training ends (final/ written), on every process. `with_trackers`
    also calls it when `should_stop` stops the run."""
