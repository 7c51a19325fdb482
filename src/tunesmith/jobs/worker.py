"""The worker: the process that runs fine-tuning jobs, one at a time, oldest first.

`tunesmith serve` starts it as a child process (`python -m tunesmith.jobs.worker`); it dies with
the server. A job it was running when it died is still `running` in the store, so the next worker
resumes it from its newest complete checkpoint (`train(..., resume=True)`): events and
checkpoints carry stable keys (step numbers), so what the first attempt recorded is never
recorded twice.

    validating_files --(data checks pass)--> queued --> running --> succeeded
          |                                                 |-----> failed
          `--> failed (invalid_training_file)               `-----> cancelled (API)
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

from tunesmith.atomic import atomic_dir
from tunesmith.config import TrainConfig
from tunesmith.data.check import check_file
from tunesmith.data.issues import summarize
from tunesmith.errors import InvalidDataError, TunesmithError, UnusableInputError
from tunesmith.jobs.models import (
    PREFIX,
    Checkpoint,
    FileRecord,
    Job,
    ModelRecord,
    new_id,
    now,
)
from tunesmith.jobs.store import JobStore, open_store
from tunesmith.modeling import load_tokenizer
from tunesmith.training.checkpoint import CHECKPOINTS
from tunesmith.training.hooks import TrainHooks, TrainingStopped

log = logging.getLogger(__name__)


def fine_tuned_name(job: Job) -> str:
    """`ft:<base>:<project>:<suffix>:<id>`, OpenAI's pattern."""
    return f"ft:{job.model}:{job.project}:{job.suffix or ''}:{job.id.removeprefix('ftjob-')}"


class Worker:
    def __init__(self, home: Path, store: JobStore) -> None:
        self.home, self.store = home, store

    def serve_forever(self, poll_s: float = 0.5, parent: int | None = None) -> None:
        """Run jobs as they come; return when the parent process is gone."""
        while parent is None or os.getppid() == parent:
            job = self.store.next_job()
            if job is None:
                time.sleep(poll_s)
                continue
            self.run(job)

    def run(self, job: Job) -> None:
        """Take `job` from wherever it stopped to a final state."""
        try:
            if job.status == "validating_files":
                job = self._validate(job)
            if job.status == "queued":
                job = self.store.update_job(job.id, status="running")
                if job.status == "running":  # not cancelled meanwhile
                    self.store.add_event(job.id, "status:running", "Fine-tuning job started")
            if job.status == "running":
                self._train(job)
        except TrainingStopped:
            self.store.add_event(job.id, "status:cancelled", "Fine-tuning job cancelled")
        except (InvalidDataError, UnusableInputError) as e:
            self._fail(job, "invalid_training_file", str(e), "training_file")
        except TunesmithError as e:
            self._fail(job, "training_error", str(e), None)
        except Exception as e:  # a bug: keep the service up, and say what happened
            log.exception("job %s failed", job.id)
            self._fail(job, "server_error", f"{type(e).__name__}: {e}", None)

    # ---- stages ---------------------------------------------------------------------------

    def _validate(self, job: Job) -> Job:
        self.store.add_event(job.id, "status:validating",
                             f"Validating training file: {job.training_file}")
        tokenizer = load_tokenizer(job.model)
        for param in ("training_file", "validation_file"):
            file_id = getattr(job, param)
            if file_id is None:
                continue
            record = self.store.get_file(job.project, file_id)
            if record is None:
                return self._fail(job, f"invalid_{param}", f"{param} {file_id}: no such file "
                                  "(deleted?)", param)
            try:
                report = check_file(self.home / record.path, tokenizer=tokenizer,
                                    model=job.model)
            except UnusableInputError as e:  # its message names our path: name the file id
                line = f" line {e.line}:" if e.line else ""
                return self._fail(job, f"invalid_{param}", f"{param} {file_id} "
                                  f"({record.filename}):{line} {e.detail}", param)
            # The 10-example minimum is for training; a small validation file is fine.
            errors = [i for i in report.errors
                      if param == "training_file" or i.code != "too_few_examples"]
            if errors:
                return self._fail(job, f"invalid_{param}", f"{param} {file_id} "
                                  f"({record.filename}) has {summarize(errors)}", param)
        job = self.store.update_job(job.id, status="queued")
        if job.status == "queued":  # not cancelled meanwhile
            self.store.add_event(job.id, "status:queued",
                                 "Files validated, moving job to queued state")
        return job

    def _train(self, job: Job) -> None:
        from tunesmith.training.loop import train

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
            out=str(run), model=job.model, method="lora",
            epochs=hp.get("n_epochs", "auto"), batch_size=hp.get("batch_size", "auto"),
            lr_multiplier=1.0 if hp.get("learning_rate_multiplier", "auto") == "auto"
            else float(hp["learning_rate_multiplier"]),
            seed=job.seed, quiet=True, resume=(run / "config.yaml").is_file())
        self._register_checkpoints(job, run)  # any the last attempt saved but did not record
        total = {}

        def on_start(resolved: dict) -> None:
            total["steps"] = resolved["total_steps"]
            self.store.update_job(job.id, hyperparameters={
                "n_epochs": resolved["epochs"], "batch_size": resolved["batch_size"],
                "learning_rate_multiplier": resolved["lr_multiplier"]})

        def on_record(entry: dict) -> None:
            if "train_loss" in entry:
                data = {k: entry[k] for k in ("step", "train_loss", "train_mean_token_accuracy",
                                              "valid_loss", "valid_mean_token_accuracy")
                        if k in entry}
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

        def should_stop() -> bool:
            current = self.store.get_job(None, job.id)
            return current is None or current.status == "cancelled"

        train(config, TrainHooks(on_start=on_start, on_record=on_record,
                                  on_checkpoint=on_checkpoint, should_stop=should_stop))
        self._succeed(job, run)

    def _succeed(self, job: Job, run: Path) -> None:
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
        message = self._public(job, message)
        self.store.add_event(job.id, "status:failed", message, level="error")
        return self.store.update_job(job.id, status="failed", finished_at=now(),
                                     error={"code": code, "message": message, "param": param})

    def _public(self, job: Job, message: str) -> str:
        """A message fit for the job's owner: the server's paths replaced by what the owner
        knows (file ids and names), any other path under the home by `<server path>`."""
        for param in ("training_file", "validation_file"):
            record = self.store.get_file(None, getattr(job, param) or "")
            if record is not None:
                message = message.replace(str(self.home / record.path),
                                          f"{record.id} ({record.filename})")
        home = re.escape(str(self.home))
        return re.sub(home + r"[^\s'\"`:,;)]*", "<server path>", message)

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
            final_meta = {"base_model": job.model, "method": "lora"}
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


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent dies (even by SIGKILL)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere the parent-pid check in serve_forever does it


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tunesmith.jobs.worker")
    ap.add_argument("--home", required=True, type=Path)
    ap.add_argument("--store", default=None, help="store URL (default: sqlite under --home)")
    ap.add_argument("--parent", type=int, default=None, help="exit when this process is gone")
    args = ap.parse_args(argv)
    _die_with_parent()
    if args.parent is not None and os.getppid() != args.parent:
        return 0
    args.home.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s",
                        handlers=[logging.FileHandler(args.home / "worker.log")])
    with open(args.home / "worker.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"another worker already runs jobs of {args.home}", file=sys.stderr)
            return 1
        store = open_store(args.store or str(args.home / "tunesmith.db"))
        Worker(args.home, store).serve_forever(parent=args.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
