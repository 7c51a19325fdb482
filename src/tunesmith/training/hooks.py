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


@dataclass
class TrainHooks:
    on_start: Callable[[dict], None] = lambda resolved: None
    """Called once with the resolved config (as config.yaml holds it) before the first step."""
    on_record: Callable[[dict], None] = lambda entry: None
    """Called with every metrics.jsonl record (steps, validation), rank 0 only."""
    on_checkpoint: Callable[[int, int, Path, dict], None] = lambda epoch, step, path, metrics: None
    """Called after each epoch's checkpoint is complete: (epoch, step, its folder, the epoch's
    latest metrics)."""
    should_stop: Callable[[], bool] = lambda: False
    """Polled after every optimizer step."""
