"""Training settings chosen on the validation split (`train --tune`), within a time budget.

    trials     learning rate = the auto rule's x 1, 0.5, 2, 4 (the rule itself first), each a
               short seeded run of up to `max_epochs` epochs
    each epoch the task metric (macro-F1, entity F1, token F1) on `tune_examples` validation
               examples; a trial stops early when it has not improved for `patience` epochs
    budget     no trial starts past the budget, and a running one ends at its first epoch end
               past it (so a run can overrun its budget by one epoch)
    result     the trial and epoch with the best validation metric (ties: the earlier trial,
               so the auto rule wins ties); its weights become RUN/final/, and RUN/tune.json
               lists every trial and epoch

    RUN/trials/lr-x0.5/   a complete run folder per trial (config.yaml, metrics.jsonl, ...)
    RUN/final/            the chosen weights (as a plain run's final/)
    RUN/tune.json         {"trials": [...], "best": {...}, "metric", "examples", "budget_minutes"}

The test split is never read.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tunesmith.atomic import atomic_dir, write_text
from tunesmith.config import TrainConfig
from tunesmith.data.formats import read_dataset
from tunesmith.data.splits import read_valid
from tunesmith.data.taskfile import read_task
from tunesmith.data.tasks import task_kind
from tunesmith.errors import UsageError
from tunesmith.evaluation.backends import HeadBackend, LocalBackend
from tunesmith.evaluation.runner import evaluate
from tunesmith.hparams import auto_epochs
from tunesmith.outputs import claim_dir
from tunesmith.training.hooks import TrainHooks
from tunesmith.training.loop import train

log = logging.getLogger(__name__)

LR_FACTORS = (1.0, 0.5, 2.0, 4.0)


@dataclass
class Trial:
    lr_factor: float
    lr: float = 0.0
    epochs: list[float] = field(default_factory=list)
    """The validation metric after each epoch run."""
    best_epoch: int | None = None
    best_metric: float | None = None
    seconds: float = 0.0
    stopped: str = "not run"
    """`all epochs`, `early stop` (no gain for `patience` epochs), `budget` (ended at the first
    epoch end past it), or `not run` (the budget ran out before it started)."""
    folder: str = ""


@dataclass
class TuneResult:
    trials: list[Trial]
    best: Trial
    metric: str
    examples: int
    budget_minutes: float
    seconds: float
    final: Path

    def to_dict(self) -> dict:
        return {"metric": self.metric, "examples": self.examples,
                "budget_minutes": self.budget_minutes, "seconds": self.seconds,
                "best": asdict(self.best), "trials": [asdict(t) for t in self.trials],
                "why": self.why()}

    def run_summary(self) -> dict:
        """The chosen trial's run as `compare` reports a training: steps, tokens, losses (from
        its metrics.jsonl), with the time of all trials (tuning is part of the one-off cost)."""
        records = [json.loads(line) for line in
                   (Path(self.best.folder) / "metrics.jsonl").read_text().splitlines() if line]
        steps = [r for r in records if "train_loss" in r]
        valid = [r["full_valid_loss"] for r in records if "full_valid_loss" in r]
        return {"seconds": self.seconds, "epochs": len(self.best.epochs),
                "steps": steps[-1]["step"] if steps else 0,
                "trained_tokens": sum(r.get("tokens", 0) for r in steps),
                "tokens_per_s": 0.0, "initial_valid_loss": valid[0] if valid else None,
                "final_valid_loss": valid[-1] if valid else None, "tune": self.to_dict()}

    def why(self) -> str:
        b = self.best
        others = ", ".join(f"x{t.lr_factor:g}: {t.best_metric:.3f}" for t in self.trials
                           if t is not b and t.best_metric is not None)
        return (f"learning rate {b.lr:.2g} (the auto rule x{b.lr_factor:g}) at epoch "
                f"{b.best_epoch} had the best validation {self.metric} ({b.best_metric:.3f}); "
                f"the other learning rates reached {others or 'nothing within the budget'}.")


def tune(config: TrainConfig, *, max_epochs: int | None = None, patience: int = 1) -> TuneResult:
    """Run the trials and write RUN/final/ and RUN/tune.json.

    Raises:
        UsageError: no validation file, or `out` holds something else.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UsageError("--tune runs in one process; start it without torchrun.")
    if not config.val_file:
        raise UsageError("--tune chooses settings on the validation split: give --data with a "
                         "validation.jsonl, or --val FILE.")
    run = claim_dir(config.out, owned=("tune.json", "trials"))
    validation = read_valid(Path(config.val_file)).examples[: config.tune_examples]
    spec = read_task(Path(config.train_file).parent)
    if spec is None:
        raise UsageError("--tune needs the task of the data (task.json beside the training "
                         "file, as `tunesmith data prepare` writes it).")
    if config.head == "task":  # a head approach: the head of the data's task
        config = dataclasses.replace(config, head=task_kind(spec.task).head or "task")
    epochs = max_epochs or (int(config.epochs) if config.epochs != "auto" else
                            min(10, 2 * auto_epochs(_count(config.train_file))))
    deadline = time.monotonic() + 60 * config.tune_budget_minutes
    started = time.monotonic()
    trials = [Trial(f) for f in LR_FACTORS]
    for trial in trials:
        if time.monotonic() >= deadline:
            break
        folder = run / "trials" / f"lr-x{trial.lr_factor:g}"
        if folder.exists():
            shutil.rmtree(folder)  # a tune run starts its trials afresh
        trial.folder = str(folder)
        best_weights = folder / "best-weights"
        state = {"stop": None, "since_best": 0}

        def on_epoch_end(epoch, model, tokenizer, autocast, trial=trial, state=state,
                         best_weights=best_weights):
            backend = _backend(model, tokenizer, config.head)
            with autocast():
                metric = evaluate(backend, validation, spec, mode="score").score
            trial.epochs.append(metric)
            log.info("tune: lr x%g, epoch %d: validation %s %.4f", trial.lr_factor, epoch,
                     task_kind(spec.task).metric, metric)
            if trial.best_metric is None or metric > trial.best_metric:
                trial.best_metric, trial.best_epoch, state["since_best"] = metric, epoch, 0
                if best_weights.exists():
                    shutil.rmtree(best_weights)
                model.save_pretrained(best_weights, safe_serialization=True)
            else:
                state["since_best"] += 1
                if state["since_best"] >= patience:
                    state["stop"] = "early stop"

        def end_training(state=state) -> bool:
            if time.monotonic() >= deadline:
                state["stop"] = state["stop"] or "budget"
            return state["stop"] is not None

        trial_config = dataclasses.replace(
            config, out=str(folder), epochs=epochs, quiet=True, resume=False, tune=False,
            lr_multiplier=config.lr_multiplier * trial.lr_factor)
        begin = time.monotonic()
        result = train(trial_config, TrainHooks(on_epoch_end=on_epoch_end,
                                                end_training=end_training))
        trial.lr, trial.stopped = result.config.lr, state["stop"] or "all epochs"
        trial.seconds = time.monotonic() - begin
    ran = [t for t in trials if t.best_metric is not None]
    if not ran:
        raise UsageError(f"--tune-budget-minutes {config.tune_budget_minutes:g} ended before the "
                         "first epoch of the first trial; give it more time.")
    best = max(ran, key=lambda t: t.best_metric)  # max keeps the first of equal ones
    final = run / "final"
    _write_final(final, Path(best.folder))
    result = TuneResult(trials, best, task_kind(spec.task).metric, len(validation),
                        config.tune_budget_minutes, time.monotonic() - started, final)
    write_text(run / "tune.json", json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def _backend(model, tokenizer, head: str):
    if head == "lm":
        return LocalBackend(model, tokenizer)
    labels = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    return HeadBackend(model, tokenizer, head, labels)


def _write_final(final: Path, trial: Path) -> None:
    """final/: the trial's final/ (tokenizer, tunesmith.json, base/ of a LoRA head), its
    weights replaced by those of its best epoch."""
    if final.exists():
        shutil.rmtree(final)
    with atomic_dir(final) as tmp:
        for item in (trial / "final").iterdir():
            if item.is_dir():
                shutil.copytree(item, tmp / item.name, symlinks=True)
            else:
                shutil.copy2(item, tmp / item.name)
        for weights in (trial / "best-weights").iterdir():
            shutil.copy2(weights, tmp / weights.name)
        adapter = tmp / "adapter_config.json"
        if (tmp / "base").is_dir() and adapter.is_file():  # a LoRA head: point at this base/
            config = json.loads(adapter.read_text())
            config["base_model_name_or_path"] = str(final.resolve() / "base")
            adapter.write_text(json.dumps(config, indent=2))


def _count(path: str) -> int:
    return len(read_dataset(path).examples)
