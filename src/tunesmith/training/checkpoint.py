"""Checkpoints: everything needed to continue a run exactly where it stopped.

At each epoch end `epoch-NNN/`, and mid-epoch `step-NNNNNN/` (every `--save-every-steps` or
`--save-every-minutes`, and when a job is paused); a mid-epoch checkpoint's state.json says how
many of the epoch's steps are done, so a resumed run skips exactly those (the data order of an
epoch is a function of the seed and the epoch).

    RUN/checkpoints/epoch-001/
        weights/        adapter (LoRA) or model (full), safetensors
        optimizer.pt    AdamW moments
        scheduler.pt    learning-rate schedule position
        rng.pt          torch / python / numpy random states (dropout, data order)
        state.json      epoch (complete ones), steps_in_epoch, step, metrics; written last

Each checkpoint is built under a temporary name and renamed into place, so a killed process
leaves either a complete checkpoint or none. `final/` (`save_final`) likewise.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tunesmith.atomic import atomic_dir
from tunesmith.config import ResolvedConfig, load_config
from tunesmith.data.taskfile import read_task
from tunesmith.errors import UsageError
from tunesmith.heads import write_head_base
from tunesmith.modeling import adapter_base, model_dir, resolve_model
from tunesmith.training.methods import load_weights, save_weights
from tunesmith.training.sharding import load_full_state, peft_names

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"


def checkpoint_dir(run: Path, epoch: int, step: int | None = None) -> Path:
    name = f"epoch-{epoch:03d}" if step is None else f"step-{step:06d}"
    return run / CHECKPOINTS / name


def save_checkpoint(
    run: Path, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler, state: dict, *, step: int | None = None,
    gathered: tuple[dict, dict] | None = None,
) -> Path:
    """Save the end of `epoch` (1-based), or with `step` a point inside the epoch after `epoch`
    (`state["steps_in_epoch"]` steps into it). `state` must be JSON-serialisable. `gathered`:
    the (model, optimizer) states of a sharded run, gathered (`sharding.full_state`)."""
    target = checkpoint_dir(run, epoch, step)
    if target.exists():  # a resumed run re-reaching a saved epoch: replace it wholesale
        shutil.rmtree(target)
    with atomic_dir(target) as tmp:
        save_weights(model, tmp / "weights", gathered[0] if gathered else None)
        torch.save(gathered[1] if gathered else optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save({"torch": torch.get_rng_state(), "python": random.getstate(),
                    "numpy": np.random.get_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
                   tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps({"epoch": epoch, **state}, indent=2))
    return target


def checkpoints(run: Path) -> list[Path]:
    """A run's complete checkpoints, oldest first (by step; an epoch end after a mid-epoch
    checkpoint of the same step)."""
    found = [p for p in _folders(run) if (p / "state.json").is_file()]
    return sorted(found, key=lambda p: (json.loads((p / "state.json").read_text())["step"],
                                        p.name.startswith("epoch-")))


def _folders(run: Path) -> list[Path]:
    folder = run / CHECKPOINTS
    return [*folder.glob("epoch-*"), *folder.glob("step-*")]


def latest_checkpoint(run: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = checkpoints(run)
    return found[-1] if found else None


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler, method: str, sharded: bool = False,
) -> dict:
    """Restore weights, optimizer, schedule and random states in place; return state.json.
    `sharded`: into an FSDP model (every process reads the gathered files)."""
    if sharded:
        from safetensors.torch import load_file

        if method == "lora":
            names = peft_names(model)
            weights = {names.get(k, k): v for k, v in
                       load_file(path / "weights" / "adapter_model.safetensors").items()}
        else:
            weights = load_file(path / "weights" / "model.safetensors")
        load_full_state(model, optimizer, weights,
                        torch.load(path / "optimizer.pt", weights_only=False))
    else:
        load_weights(model, path / "weights", method)
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    rng = torch.load(path / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return json.loads((path / "state.json").read_text())


def prune_checkpoints(run: Path, keep: set[Path]) -> None:
    """Delete every checkpoint but those in `keep` (the latest and the best)."""
    for p in _folders(run):
        if p not in keep:
            shutil.rmtree(p, ignore_errors=True)


def remove_stale_temps(run: Path) -> None:
    """Delete half-written checkpoint/final folders left by a killed process (hidden `.tmp`s)."""
    for folder in (run, run / CHECKPOINTS):
        for p in folder.glob(".*.tmp"):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


@dataclass
class Progress:
    """Where a run stands: what a checkpoint's state.json restores."""

    epoch: int = 0
    """Complete epochs."""
    step: int = 0
    steps_in_epoch: int = 0
    """Steps of the next epoch already done (a mid-epoch checkpoint)."""
    initial_valid_loss: float | None = None
    best: dict = field(default_factory=lambda: {"loss": math.inf, "epoch": None, "path": None})
    """The best epoch end by full validation loss: loss, epoch, checkpoint path."""


def restore(path: Path | None, model: nn.Module, optimizer: torch.optim.Optimizer,
            scheduler: torch.optim.lr_scheduler.LRScheduler, method: str,
            sharded: bool = False) -> Progress:
    """Load the checkpoint `path` in place (`load_checkpoint`) and say where the run stands;
    a new run (`path` None) stands at the start."""
    if path is None:
        return Progress()
    state = load_checkpoint(path, model, optimizer, scheduler, method, sharded=sharded)
    best = state["best"]
    if best.get("path"):
        best["path"] = Path(best["path"])
    progress = Progress(state["epoch"], state["step"], state.get("steps_in_epoch", 0),
                        state.get("initial_valid_loss"), best)
    log.info("resumed from %s (epoch %d, step %d)", path, progress.epoch + 1, progress.step)
    return progress


def save_final(final: Path, model: torch.nn.Module, tokenizer, cfg: ResolvedConfig,
               objective: dict, state_dict: dict | None = None) -> None:
    """final/: weights (adapter or full model) + tokenizer + how it was made."""
    if final.exists():
        shutil.rmtree(final)
    ref = resolve_model(cfg.model)
    with atomic_dir(final) as tmp:
        save_weights(model, tmp, state_dict)
        tokenizer.save_pretrained(tmp)
        if objective["head"] != "lm" and cfg.method == "lora":
            write_head_base(tmp, final, model, model_dir(ref))
        spec = read_task(Path(cfg.train_file).parent)
        # A continued adapter keeps the base of the adapter it continued.
        base_path = adapter_base(Path(model_dir(ref)), None) if ref.is_adapter else model_dir(ref)
        meta = {"base_model": cfg.model, "base_model_path": base_path,
                "continued_from": cfg.model if ref.is_adapter else None, "method": cfg.method,
                "quantize": cfg.quantize, "loss": cfg.loss,
                "task": spec.to_dict() if spec else None, **objective}
        (tmp / "tunesmith.json").write_text(json.dumps(meta, indent=2))


def saved_batch_tokens(run: Path) -> int | None:
    """The tokens a step of the run in `run` took (what --batch-tokens auto chose), if any."""
    saved = run / "config.yaml"
    return (load_config(saved).get("batch_tokens") or None) if saved.is_file() else None


def resume_point(run: Path, cfg: ResolvedConfig) -> Path | None:
    """The checkpoint to continue from (`--resume`), after checking it belongs to this run."""
    saved = run / "config.yaml"
    if not cfg.resume:
        if saved.is_file():
            raise UsageError(f"{run} already holds a run; pass --resume to continue it, or choose "
                             "another --out.")
        return None
    remove_stale_temps(run)
    checkpoint = latest_checkpoint(run)
    if checkpoint is None or not saved.is_file():
        log.warning("--resume: %s has no complete checkpoint yet; starting from the beginning", run)
        return None
    before = load_config(saved)
    # a setting added after the run was saved had its default then
    defaults = {f.name: f.default for f in dataclasses.fields(ResolvedConfig)}
    changed = [k for k in ResolvedConfig.RUN_DEFINING
               if before.get(k, defaults[k]) != getattr(cfg, k)]
    if changed:
        raise UsageError(f"--resume: {', '.join(changed)} differ from the run in {run}; resume "
                         "with the same settings, or start a new run with another --out.")
    return checkpoint
