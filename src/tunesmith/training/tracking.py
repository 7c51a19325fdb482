"""Experiment tracking: send a run's metrics to TensorBoard, MLflow or Weights & Biases
(`train --report-to`), as HF Trainer's `report_to` does.

The trackers get exactly the records metrics.jsonl gets; every numeric key but `step` becomes a
metric at that step:

    {"step": 3, "epoch": 1, "train_loss": 2.31, "lr": 1.9e-4, "tokens": 512}
      -> log({"epoch": 1, "train_loss": 2.31, "lr": 1.9e-4, "tokens": 512}, step=3)

Each writes into the run folder unless its environment says otherwise: RUN/tensorboard/,
RUN/mlflow.db (+ RUN/mlruns/ for artifacts; $MLFLOW_TRACKING_URI overrides), RUN/wandb/ (offline
unless $WANDB_API_KEY or $WANDB_MODE is set). The packages are optional extras
(`pip install 'tunesmith[tracking]'`), imported only when asked for. Only the run's resolved
config is logged: never the environment, where the API keys are.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Protocol

import yaml

from tunesmith.errors import UsageError
from tunesmith.training.hooks import TrainHooks


class Tracker(Protocol):
    def start(self, config: dict, run_dir: Path) -> None:
        """Open the run: `config` is the resolved config (config.yaml), `run_dir` the run folder."""

    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def finish(self) -> None: ...


def _require(module: str, package: str) -> ModuleType:
    """Import `module`, or say which package `--report-to` needs."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise UsageError(f"--report-to {package} needs the {package} package: pip install "
                         f"{package} (or pip install 'tunesmith[tracking]' for all three)."
                         ) from e


class TensorBoardTracker:
    """Event files in RUN/tensorboard/ (`tensorboard --logdir RUN/tensorboard`); the config is
    the text entry `config`."""

    def __init__(self) -> None:
        self._module = _require("torch.utils.tensorboard", "tensorboard")
        self._writer = None

    def start(self, config: dict, run_dir: Path) -> None:
        self._writer = self._module.SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        text = yaml.safe_dump(config, sort_keys=False)
        self._writer.add_text("config", "".join(f"    {line}\n" for line in text.splitlines()))

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self._writer.add_scalar(key, value, step)

    def finish(self) -> None:
        self._writer.close()


class MLflowTracker:
    """A run in the experiment $MLFLOW_EXPERIMENT_NAME (default `tunesmith`) at
    $MLFLOW_TRACKING_URI, else in RUN/mlflow.db (`mlflow ui --backend-store-uri
    sqlite:///RUN/mlflow.db`). The config's fields are the run's params."""

    def __init__(self) -> None:
        self._mlflow = _require("mlflow", "mlflow")
        self._client = None
        self._run_id = ""

    def start(self, config: dict, run_dir: Path) -> None:
        from mlflow.entities import Param

        # MLflow 3 refuses its plain-file store (`file:RUN/mlruns`) unless told otherwise; a
        # SQLite file is its recommended local store.
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        local = run_dir.resolve()
        self._client = self._mlflow.MlflowClient(tracking_uri=uri or f"sqlite:///{local}/mlflow.db")
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "tunesmith")
        experiment = self._client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self._client.create_experiment(
            name, artifact_location=None if uri else (local / "mlruns").as_uri())
        self._run_id = self._client.create_run(experiment_id, run_name=run_dir.name).info.run_id
        # MLflow caps a param value at 6000 characters and a batch at 100 params.
        params = [Param(key, str(value)[:6000]) for key, value in config.items()]
        for first in range(0, len(params), 100):
            self._client.log_batch(self._run_id, params=params[first:first + 100])

    def log(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._client.log_batch(self._run_id, metrics=[
            Metric(key, float(value), now, step) for key, value in metrics.items()])

    def finish(self) -> None:
        self._client.set_terminated(self._run_id)


class WandbTracker:
    """A W&B run (project, entity, name, tags from the config's `wandb_*` fields), offline in
    RUN/wandb/ unless $WANDB_API_KEY is set (then online) or $WANDB_MODE says otherwise.
    Upload an offline run later with `wandb sync RUN/wandb/offline-run-*`."""

    def __init__(self) -> None:
        self._wandb = _require("wandb", "wandb")
        self._run = None

    def start(self, config: dict, run_dir: Path) -> None:
        mode = os.environ.get("WANDB_MODE") or (
            "online" if os.environ.get("WANDB_API_KEY") else "offline")
        settings = self._wandb.Settings(silent=True, console="off", save_code=False,
                                        disable_git=True)
        # reinit="create_new": a worker process trains many jobs, each its own run.
        self._run = self._wandb.init(
            project=config.get("wandb_project") or os.environ.get("WANDB_PROJECT") or "tunesmith",
            entity=config.get("wandb_entity"), name=config.get("wandb_name") or run_dir.name,
            tags=config.get("wandb_tags") or None, config=config, dir=str(run_dir), mode=mode,
            reinit="create_new", settings=settings)

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._run.log(metrics, step=step)

    def finish(self) -> None:
        self._run.finish()


TRACKERS: dict[str, Callable[[], Tracker]] = {
    "tensorboard": TensorBoardTracker, "mlflow": MLflowTracker, "wandb": WandbTracker}
"""`--report-to` name -> tracker; the names match `config.TrackerName` (a test checks)."""


def numeric_metrics(entry: dict) -> dict[str, float]:
    """Every number in a metrics record but its step (booleans are not metrics)."""
    return {key: value for key, value in entry.items()
            if key != "step" and isinstance(value, int | float) and not isinstance(value, bool)}


@dataclasses.dataclass
class _Fanout:
    """Starts the trackers on the first record (so only rank 0, which writes metrics.jsonl,
    runs them) and finishes them once."""

    trackers: list[Tracker]
    run_dir: Path
    config: dict = dataclasses.field(default_factory=dict)
    started: bool = False
    finished: bool = False

    def record(self, entry: dict) -> None:
        if self.finished:
            return
        if not self.started:
            self.started = True
            for tracker in self.trackers:
                tracker.start(self.config, self.run_dir)
        metrics = numeric_metrics(entry)
        for tracker in self.trackers:
            tracker.log(metrics, int(entry["step"]))

    def finish(self) -> None:
        if self.started and not self.finished:
            for tracker in self.trackers:
                tracker.finish()
        self.finished = True


def with_trackers(hooks: TrainHooks, names: list[str], run_dir: Path) -> TrainHooks:
    """`hooks`, also feeding the run's config and metrics records to the trackers `names`.

    Args:
        hooks: the caller's hooks; each still runs, before the trackers.
        names: keys of `TRACKERS` (`TrainConfig.report_to`).
        run_dir: the run folder, where local trackers write.

    Returns:
        Hooks whose `on_start` keeps the resolved config, `on_record` logs the record,
        `on_finish` (and a `should_stop` that stops the run) finishes the trackers.

    Raises:
        UsageError: a tracker's package is not installed (checked now, before training).
    """
    fan = _Fanout([TRACKERS[name]() for name in dict.fromkeys(names)], run_dir)

    def on_start(resolved: dict) -> None:
        hooks.on_start(resolved)
        fan.config = resolved

    def on_record(entry: dict) -> None:
        hooks.on_record(entry)
        fan.record(entry)

    def should_stop() -> bool:
        stop = hooks.should_stop()
        if stop:
            fan.finish()
        return stop

    def on_finish() -> None:
        hooks.on_finish()
        fan.finish()

    return dataclasses.replace(hooks, on_start=on_start, on_record=on_record,
                               should_stop=should_stop, on_finish=on_finish)
