"""The worker: the process that runs fine-tuning jobs, one at a time, oldest first.

`tunesmith serve --workers N` starts N of them as child processes (`python -m tunesmith worker
--parent PID`), which die with the server and are restarted when they die alone
(`jobs/pool.py`); `tunesmith worker` runs one on any machine
that reaches the database and the service home. Workers claim jobs with a lease they renew
while they work (`jobs/lease.py`), and only jobs whose device they have. A job whose worker
died is still `running` in the store with a lease that runs out, so another worker claims it
and resumes it from its newest complete checkpoint (`train(..., resume=True)`): events and
checkpoints carry stable keys (step numbers), so what the first attempt recorded is never
recorded twice.

    validating_files --(data checks pass)--> queued --> running --> succeeded
          |                      ^                          |-----> failed
          `--> failed            `--- (API resume) paused <-|-----> cancelled (API)
               (invalid_training_file)    (a checkpoint of the step, no worker)
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import time
from dataclasses import asdict
from pathlib import Path

from tunesmith.atomic import atomic_dir, write_text
from tunesmith.config import TrainConfig
from tunesmith.errors import InvalidDataError, TunesmithError, UnusableInputError
from tunesmith.jobs.database import database_url, open_store
from tunesmith.jobs.lease import Lease
from tunesmith.jobs.models import (
    PREFIX,
    Checkpoint,
    FileRecord,
    Job,
    JobTraining,
    ModelRecord,
    new_id,
    now,
)
from tunesmith.jobs.store import JobStore
from tunesmith.jobs.validation import fail, training_spec, validate_job
from tunesmith.training.checkpoint import CHECKPOINTS
from tunesmith.training.hooks import TrainHooks, TrainingPaused, TrainingStopped
from tunesmith.training.loop import train

log = logging.getLogger(__name__)


VALIDATING_GRACE_S = 120
"""A job the API has not finished validating in this long is validated by the worker."""


def fine_tuned_name(job: Job) -> str:
    """`ft:<base>:<project>:<suffix>:<id>`, OpenAI's pattern (the root base model for a
    continued fine-tuning)."""
    base = job.base_model or job.model
    return f"ft:{base}:{job.project}:{job.suffix or ''}:{job.id.removeprefix('ftjob-')}"


def tracking_fields(job: Job) -> dict:
    """`TrainConfig` fields for the job's `integrations`: a `wandb` one logs the run to W&B,
    named after the job unless it names the run. The run is offline (RUN/wandb/; upload it with
    `wandb sync`) unless the server's environment has WANDB_API_KEY (or WANDB_MODE=online):
    then it goes to the W&B account of that key."""
    wandb = next((i["wandb"] for i in job.integrations if i.get("type") == "wandb"), None)
    if wandb is None:
        return {}
    return {"report_to": ["wandb"], "wandb_project": wandb["project"],
            "wandb_entity": wandb.get("entity"), "wandb_name": wandb.get("name") or job.id,
            "wandb_tags": list(wandb.get("tags") or [])}


def detect_devices() -> tuple[str, int]:
    """What this machine offers jobs: `("cuda", number of GPUs)`, else `("cpu", 0)`."""
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        return "cuda", torch.cuda.device_count()
    return "cpu", 0


class Worker:
    """Runs jobs of the store whose files and runs live under `home`.

    Args:
        worker_id: unique among the workers sharing the store (default `HOST-PID`).
        device, gpus: what this worker has; it claims only jobs that need at most that.
        lease_s: how long a claim holds without renewal: a dead worker's job waits this long
            before another worker resumes it.
        training: memory levers applied to every job (gradient checkpointing, QLoRA, 8-bit
            AdamW).
    """

    def __init__(self, home: Path, store: JobStore, *, worker_id: str | None = None,
                 device: str = "cpu", gpus: int = 0, lease_s: float = 60,
                 training: JobTraining | None = None) -> None:
        self.home, self.store = home, store
        self.training = training or JobTraining()
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.device, self.gpus, self.lease_s = device, gpus, lease_s
        self.lease: Lease | None = None
        """The lease on the job being run (None when a caller runs a job directly)."""

    def serve_forever(self, poll_s: float = 0.5, parent: int | None = None) -> None:
        """Claim and run jobs as they come; return when the parent process is gone."""
        self._announce(None)
        try:
            while parent is None or os.getppid() == parent:
                self._release_dead_neighbours()
                job = self.store.claim_job(self.id, device=self.device, gpus=self.gpus,
                                           lease_s=self.lease_s,
                                           validating_grace_s=VALIDATING_GRACE_S)
                if job is None:
                    time.sleep(poll_s)
                    continue
                log.info("worker %s claimed %s (%s)", self.id, job.id, job.status)
                self._announce(job.id)
                with Lease(self.store, job.id, self.id, self.lease_s) as self.lease:
                    self.run(job)
                self.lease = None
                self._announce(None)
        finally:
            (self.home / "workers" / f"{self.id}.json").unlink(missing_ok=True)

    def _announce(self, job_id: str | None) -> None:
        """HOME/workers/ID.json: who this worker is and which job it runs (for people, and for
        tests that kill the worker running a given job)."""
        write_text(self.home / "workers" / f"{self.id}.json", json.dumps(
            {"id": self.id, "host": socket.gethostname(), "pid": os.getpid(),
             "device": self.device, "gpus": self.gpus, "job": job_id}))

    def _release_dead_neighbours(self) -> None:
        """Free the jobs of workers of this machine whose process is gone (a server restarted
        after a crash), so they resume now rather than when their lease runs out. Workers
        elsewhere are left to their leases: their pids mean nothing here."""
        for path in (self.home / "workers").glob("*.json"):
            try:
                other = json.loads(path.read_text())
                if other["host"] != socket.gethostname() or other["id"] == self.id:
                    continue
                os.kill(other["pid"], 0)
            except ProcessLookupError:
                if other.get("job"):
                    log.info("worker %s is gone; releasing %s", other["id"], other["job"])
                    self.store.release_job(other["job"], other["id"])
                path.unlink(missing_ok=True)
            except (OSError, ValueError, KeyError):
                continue  # being written, or not ours to judge (another user's process)

    def _lost(self) -> bool:
        return self.lease is not None and self.lease.lost

    def run(self, job: Job) -> None:
        """Take `job` from wherever it stopped to a final state (or stop where it is when
        another worker claims it meanwhile)."""
        try:
            if job.status == "validating_files":
                job = validate_job(self.store, self.home, job)
            if job.status == "queued":
                job = self.store.update_job(job.id, only_from=frozenset({"queued"}),
                                            status="running")
                if job.status == "running":  # not cancelled or paused meanwhile
                    self.store.add_event(job.id, "status:running", "Fine-tuning job started")
            if job.status == "running":
                self._train(job)
        except TrainingStopped:
            if self._lost():  # not cancelled: the job is another worker's now
                log.warning("worker %s stopped %s: its lease was lost", self.id, job.id)
                return
            self.store.add_event(job.id, "status:cancelled", "Fine-tuning job cancelled")
        except TrainingPaused as e:
            step = str(e).rsplit(" ", 1)[-1]
            job = self.store.update_job(job.id, only_from=frozenset({"paused"}), paused_at=now())
            self.store.add_event(job.id, f"paused:{step}", f"Fine-tuning job paused at step "
                                 f"{step}; POST .../resume continues from there")
        except (InvalidDataError, UnusableInputError) as e:
            self._fail(job, "invalid_training_file", str(e), "training_file")
        except TunesmithError as e:
            self._fail(job, "training_error", str(e), None)
        except Exception as e:  # a bug: keep the service up, and say what happened
            log.exception("job %s failed", job.id)
            self._fail(job, "server_error", f"{type(e).__name__}: {e}", None)

    # ---- stages ---------------------------------------------------------------------------

    def _train(self, job: Job) -> None:
        run = self.home / job.workdir
        files = {p: self.store.get_file(job.project, getattr(job, p))
                 for p in ("training_file", "validation_file") if getattr(job, p)}
        for param, record in files.items():
            if record is None:  # deleted before deletes of in-use files were refused
                self._fail(job, f"invalid_{param}", f"{param} {getattr(job, param)}: no such "
                           "file (deleted?)", param)
                return
        hp = job.hyperparameters
        config = TrainConfig(
            train_file=str(self.home / files["training_file"].path),
            val_file=str(self.home / files["validation_file"].path)
            if "validation_file" in files else None,
            out=str(run), model=training_spec(self.store, self.home, job),
            method=job.method, beta=hp.get("beta", "auto"),
            epochs=hp.get("n_epochs", "auto"), batch_size=hp.get("batch_size", "auto"),
            lr_multiplier=1.0 if hp.get("learning_rate_multiplier", "auto") == "auto"
            else float(hp["learning_rate_multiplier"]),
            seed=job.seed, quiet=True, resume=(run / "config.yaml").is_file(),
            device="cpu" if self.device == "cpu" else "auto",
            **asdict(self.training), **tracking_fields(job))
        self._register_checkpoints(job, run)  # any the last attempt saved but did not record
        total = {}

        def on_start(resolved: dict) -> None:
            total["steps"] = resolved["total_steps"]
            resolved_hp = {"n_epochs": resolved["epochs"], "batch_size": resolved["batch_size"],
                           "learning_rate_multiplier": resolved["lr_multiplier"]}
            if job.method == "dpo":
                resolved_hp["beta"] = resolved["beta"]
            self.store.update_job(job.id, hyperparameters=resolved_hp)

        def on_record(entry: dict) -> None:
            if "train_loss" in entry:
                data = {k: v for k, v in entry.items() if k.startswith(("train_", "valid_"))
                        or k == "step"}
                data["total_steps"] = total.get("steps")
                self.store.add_event(job.id, f"step:{entry['step']}",
                                     f"Step {entry['step']}/{total.get('steps')}: training "
                                     f"loss={entry['train_loss']:.4f}", type="metrics", data=data)
            elif "full_valid_loss" in entry and entry["step"] > 0:
                self.store.add_event(job.id, f"full_valid:{entry['step']}",
                                     f"Step {entry['step']}: full validation loss="
                                     f"{entry['full_valid_loss']:.4f}", type="metrics",
                                     data=entry)

        def on_checkpoint(epoch: int, step: int, path: Path, metrics: dict) -> None:
            self._register_checkpoint(job, path, step, metrics)

        seen: dict = {}  # the job's status as should_stop read it this step

        def should_stop() -> bool:
            if self._lost():
                return True
            current = self.store.get_job(None, job.id)
            seen["status"] = current.status if current is not None else None
            return current is None or current.status == "cancelled"

        def should_pause() -> bool:
            # polled right after should_stop in the same step: one database read a step
            return seen.get("status") == "paused"

        train(config, TrainHooks(on_start=on_start, on_record=on_record,
                                  on_checkpoint=on_checkpoint, should_stop=should_stop,
                                  should_pause=should_pause))
        self._succeed(job, run)

    def _succeed(self, job: Job, run: Path) -> None:
        if self._lost():  # finished just as another worker took over: it finishes too
            return
        name = fine_tuned_name(job)
        self.store.add_model(ModelRecord(name, job.project, "fine-tuned",
                                         str((run / "final").relative_to(self.home)),
                                         job_id=job.id))
        results = FileRecord(_stable_id("file", job.id + ":results"), job.project,
                             "step_metrics.csv", "fine-tune-results",
                             (run / "results.csv").stat().st_size, now(),
                             str((run / "results.csv").relative_to(self.home)))
        if self.store.get_file(None, results.id) is None:
            self.store.add_file(results)
        tokens = sum(r.get("tokens", 0) for r in _records(run) if "train_loss" in r)
        self.store.add_event(job.id, "status:succeeded", "The job has successfully completed")
        self.store.update_job(job.id, status="succeeded", finished_at=now(),
                              fine_tuned_model=name, trained_tokens=tokens,
                              result_files=[results.id])

    def _fail(self, job: Job, code: str, message: str, param: str | None) -> Job:
        return fail(self.store, self.home, job, code, message, param)

    # ---- checkpoints ----------------------------------------------------------------------

    def _register_checkpoints(self, job: Job, run: Path) -> None:
        records = _records(run)
        for folder in sorted((run / CHECKPOINTS).glob("epoch-*")):
            state = folder / "state.json"
            if state.is_file():
                step = json.loads(state.read_text())["step"]
                metrics: dict = {}
                for r in records:
                    if r["step"] <= step:
                        metrics.update(r)
                self._register_checkpoint(job, folder, step, metrics)

    def _register_checkpoint(self, job: Job, folder: Path, step: int, metrics: dict) -> None:
        """Copy a checkpoint's weights into a model folder of their own (training keeps only the
        latest and the best checkpoint) and record it, once per step."""
        model_id = f"{fine_tuned_name(job)}:ckpt-step-{step}"
        target = self.home / "models" / f"{Path(job.workdir).name}-step-{step}"
        if not target.exists():
            final_meta = {"base_model": job.base_model or job.model, "method": "lora"}
            with atomic_dir(target) as tmp:
                for f in (folder / "weights").iterdir():
                    shutil.copy2(f, tmp / f.name)
                (tmp / "tunesmith.json").write_text(json.dumps(final_meta))
        self.store.add_model(ModelRecord(model_id, job.project, "checkpoint",
                                         str(target.relative_to(self.home)), job_id=job.id))
        metrics = {k: v for k, v in metrics.items() if k not in ("epoch", "tokens", "tokens_per_s",
                                                                 "lr", "grad_norm")}
        if self.store.add_checkpoint(Checkpoint(new_id("checkpoint"), job.id, now(), step,
                                                model_id, {**metrics, "step": step})):
            self.store.add_event(job.id, f"checkpoint:{step}",
                                 f"Checkpoint created at step {step}")


def _records(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _stable_id(kind: str, key: str) -> str:
    return PREFIX[kind] + hashlib.sha256(key.encode()).hexdigest()[:24]


def die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent dies (even by SIGKILL)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere the parent-pid check in serve_forever does it


def make_worker(home: Path, url: str | None = None, *, device: str | None = None,
                gpus: int | None = None, lease_s: float = 60,
                training: JobTraining | None = None) -> Worker:
    """A worker over `home` and the database `url` (default: `database_url`); `device` and
    `gpus` default to what this machine has."""
    if device is None or (device == "cuda" and gpus is None):
        detected, count = detect_devices()
        device = device or detected
        gpus = gpus if gpus is not None else max(count, 1)
    gpus = 0 if device == "cpu" else gpus
    worker = Worker(home, open_store(database_url(url, home)), device=device, gpus=gpus,
                    lease_s=lease_s, training=training)
    log.info("worker %s: device %s, %d GPU(s), lease %g s", worker.id, device, gpus, lease_s)
    return worker
