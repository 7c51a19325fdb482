"""Checking a job's files, as soon as the job is created.

The API runs `validate_job` in the background right after `POST /v1/fine_tuning/jobs`, so a bad
file fails its job within seconds even while the worker trains another job; the worker runs it
too, for a job whose validation the server did not finish (it stopped meanwhile).

    validating_files --(data checks pass)--> queued
          `--> failed (invalid_training_file / invalid_validation_file, with the lines)
"""

from __future__ import annotations

import re
from pathlib import Path

from tunesmith.data.check import check_file
from tunesmith.data.issues import summarize
from tunesmith.errors import ModelError, UnusableInputError
from tunesmith.jobs.models import Job, now
from tunesmith.jobs.store import JobStore
from tunesmith.modeling import load_tokenizer

VALIDATING = frozenset({"validating_files"})


def training_spec(store: JobStore, home: Path, job: Job) -> str:
    """The model spec a job trains from: a base model's spec, or the folder of the fine-tuned
    model or checkpoint it continues."""
    record = store.get_model(job.project, job.model)
    if record is None or record.kind == "base":
        return record.spec if record is not None else job.model
    return str(home / record.spec)


def validate_job(store: JobStore, home: Path, job: Job) -> Job:
    """Check the job's files with `data check` (and that they fit its method); move it to
    `queued`, or to `failed` with the first errors and their lines."""
    if job.status not in VALIDATING:
        return job
    store.add_event(job.id, "status:validating", f"Validating training file: {job.training_file}")
    try:
        tokenizer = load_tokenizer(training_spec(store, home, job))
    except ModelError as e:
        return fail(store, home, job, "model_not_available", str(e), "model")
    for param in ("training_file", "validation_file"):
        file_id = getattr(job, param)
        if file_id is None:
            continue
        record = store.get_file(job.project, file_id)
        if record is None:
            return fail(store, home, job, f"invalid_{param}", f"{param} {file_id}: no such file "
                        "(deleted?)", param)
        name = f"{param} {file_id} ({record.filename})"
        try:
            report = check_file(home / record.path, tokenizer=tokenizer, model=job.model)
        except UnusableInputError as e:  # its message names our path: name the file id
            line = f" line {e.line}:" if e.line else ""
            return fail(store, home, job, f"invalid_{param}", f"{name}:{line} {e.detail}", param)
        # The 10-example minimum is for training; a small validation file is fine.
        errors = [i for i in report.errors
                  if param == "training_file" or i.code != "too_few_examples"]
        if errors:
            return fail(store, home, job, f"invalid_{param}", f"{name} has {summarize(errors)}",
                        param)
        preference = report.format == "preference"
        if preference != (job.method == "dpo"):
            want = ("preference rows ({\"input\", \"preferred_output\", "
                    "\"non_preferred_output\"})" if job.method == "dpo" else
                    "chat rows ({\"messages\": [...]}); preference rows need method dpo")
            return fail(store, home, job, f"invalid_{param}", f"{name}: a {job.method} job needs "
                        f"{want}, and this file holds {report.format} rows.", param)
    job = store.update_job(job.id, only_from=VALIDATING, status="queued")
    if job.status == "queued":  # not cancelled or paused meanwhile
        store.add_event(job.id, "status:queued", "Files validated, moving job to queued state")
    return job


def fail(store: JobStore, home: Path, job: Job, code: str, message: str,
         param: str | None) -> Job:
    """Move `job` to failed with an OpenAI error object, its message fit for the job's owner."""
    message = public(store, home, job, message)
    store.add_event(job.id, "status:failed", message, level="error")
    return store.update_job(job.id, status="failed", finished_at=now(),
                            error={"code": code, "message": message, "param": param})


def public(store: JobStore, home: Path, job: Job, message: str) -> str:
    """A message fit for the job's owner: the server's paths replaced by what the owner knows
    (file ids and names), any other path under the home by `<server path>`."""
    for param in ("training_file", "validation_file"):
        record = store.get_file(None, getattr(job, param) or "")
        if record is not None:
            message = message.replace(str(home / record.path), f"{record.id} ({record.filename})")
    return re.sub(re.escape(str(home)) + r"[^\s'\"`:,;)]*", "<server path>", message)
