"""`/v1/fine_tuning/jobs`: create, list, retrieve, cancel, events, checkpoints. The worker process
does the work; these handlers only record and report."""

from __future__ import annotations

import random
import secrets
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query

from tunesmith.jobs.models import FINAL, Job, new_id, now
from tunesmith.jobs.store import JobStore
from tunesmith.jobs.validation import validate_job
from tunesmith.serve import objects
from tunesmith.serve.deps import ProjectDep, SettingsDep, StoreDep
from tunesmith.serve.errors import APIError, not_found, ok
from tunesmith.serve.schemas import Hyperparameters, JobCreate, Placement

router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["fine-tuning"])

Limit = Annotated[int, Query(ge=1, le=100)]
ACTIVE = frozenset({"validating_files", "queued", "running"})


@router.post("", responses=ok(objects.FineTuningJob))
def create_job(body: JobCreate, store: StoreDep, project: ProjectDep, settings: SettingsDep,
               background: BackgroundTasks) -> dict:
    for param in ("training_file", "validation_file"):
        file_id = getattr(body, param)
        record = store.get_file(project, file_id) if file_id is not None else None
        if file_id is not None and record is None:
            raise APIError(400, f"Invalid file ID {file_id!r}: no such file.", param=param,
                           code="invalid_file_id")
        if record is not None and record.purpose != "fine-tune":
            raise APIError(400, f"File {file_id} was uploaded with purpose {record.purpose!r}; "
                           "fine-tuning needs purpose 'fine-tune'.", param=param,
                           code="invalid_file_purpose")
    # Only models this server offers: a client-given path or hub id would let callers probe
    # the server's disk (the error for a missing folder differs from one for a bad folder).
    # A fine-tuned model or checkpoint of this project continues training (its job names the
    # root base model).
    model = store.get_model(project, body.model)
    if model is None:
        raise APIError(400, f"Model {body.model!r} cannot be fine-tuned: not a model this server "
                       "offers; GET /v1/models lists the base models and your fine-tuned ones.",
                       param="model", code="model_not_available")
    base = None
    if model.kind != "base":
        parent = store.get_job(project, model.job_id or "")
        base = (parent.base_model or parent.model) if parent is not None else None
    if body.method is not None:
        method, hp = body.method.type, body.method.hyperparameters()
    else:
        method = "supervised"
        hp = (body.hyperparameters or Hyperparameters()).model_dump()
    job = Job(new_id("job"), project, body.model, body.training_file, body.validation_file, hp,
              body.seed if body.seed is not None else random.randrange(2**31),
              body.suffix or None, body.metadata, workdir=f"runs/{secrets.token_hex(8)}",
              integrations=[i.model_dump() for i in body.integrations or []],
              method=method, base_model=base, **(body.tunesmith or Placement()).model_dump())
    store.add_job(job)
    store.add_event(job.id, "created", f"Created fine-tuning job: {job.id}")
    # Checked at once, beside the worker: a bad file fails its job in seconds even while
    # another job trains.
    background.add_task(validate_job, store, settings.home, job)
    return objects.FineTuningJob.of(job).api()


@router.get("", responses=ok(objects.JobList))
def list_jobs(store: StoreDep, project: ProjectDep, after: str | None = None,
              limit: Limit = 20) -> dict:
    jobs, more = store.list_jobs(project, after, limit)
    return {"object": "list", "data": [objects.FineTuningJob.of(j).api() for j in jobs],
            "has_more": more}


@router.get("/{job_id}", responses=ok(objects.FineTuningJob))
def retrieve_job(job_id: str, store: StoreDep, project: ProjectDep) -> dict:
    return objects.FineTuningJob.of(_job(store, project, job_id)).api()


@router.post("/{job_id}/cancel", responses=ok(objects.FineTuningJob))
def cancel_job(job_id: str, store: StoreDep, project: ProjectDep) -> dict:
    job = _job(store, project, job_id)
    if job.status in FINAL and job.status != "cancelled":
        raise APIError(400, f"Job {job_id} has already {job.status}; it cannot be cancelled.",
                       param="fine_tuning_job_id", code="invalid_state")
    job = store.cancel_job(job_id)
    store.add_event(job_id, "cancel-requested", "Job cancellation requested")
    return objects.FineTuningJob.of(job).api()


@router.post("/{job_id}/pause", responses=ok(objects.FineTuningJob))
def pause_job(job_id: str, store: StoreDep, project: ProjectDep) -> dict:
    """A running job stops at its next step with a checkpoint of it (the worker then takes
    other jobs); a waiting one just waits until it is resumed."""
    job = _job(store, project, job_id)
    if job.status not in ("validating_files", "queued", "running"):
        raise APIError(400, f"Job {job_id} is {job.status}; only a validating, queued or "
                       "running job can be paused.", param="fine_tuning_job_id",
                       code="invalid_state")
    running = job.status == "running"
    job = store.update_job(job_id, only_from=ACTIVE, status="paused",
                           paused_at=None if running else now(),
                           resume_to="running" if running else job.status)
    if job.status == "paused":
        store.add_event(job_id, f"pause-requested:{secrets.token_hex(4)}",
                        "Job pause requested" + (": pausing at the next step" if running else ""))
    return objects.FineTuningJob.of(job).api()


@router.post("/{job_id}/resume", responses=ok(objects.FineTuningJob))
def resume_job(job_id: str, store: StoreDep, project: ProjectDep) -> dict:
    """A paused job goes back in the queue and continues from its checkpoint."""
    job = _job(store, project, job_id)
    if job.status != "paused":
        raise APIError(400, f"Job {job_id} is {job.status}; only a paused job can be resumed.",
                       param="fine_tuning_job_id", code="invalid_state")
    # Not yet stopped by the worker (paused_at unset): it simply keeps running.
    status = job.resume_to if job.paused_at is None else (
        "queued" if job.resume_to == "running" else job.resume_to)
    job = store.update_job(job_id, only_from=frozenset({"paused"}), status=status,
                           paused_at=None)
    store.add_event(job_id, f"resumed:{secrets.token_hex(4)}", "Fine-tuning job resumed")
    return objects.FineTuningJob.of(job).api()


@router.get("/{job_id}/events", responses=ok(objects.EventList))
def list_events(job_id: str, store: StoreDep, project: ProjectDep, after: str | None = None,
                limit: Limit = 20) -> dict:
    _job(store, project, job_id)
    events, more = store.list_events(job_id, after, limit)
    return {"object": "list", "data": [objects.JobEvent.of(e).api() for e in events],
            "has_more": more}


@router.get("/{job_id}/checkpoints", responses=ok(objects.CheckpointList))
def list_checkpoints(job_id: str, store: StoreDep, project: ProjectDep,
                     after: str | None = None, limit: Limit = 10) -> dict:
    _job(store, project, job_id)
    checkpoints, more = store.list_checkpoints(job_id, after, limit)
    data = [objects.JobCheckpoint.of(c).api() for c in checkpoints]
    return {"object": "list", "data": data, "has_more": more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


def _job(store: JobStore, project: str, job_id: str) -> Job:
    job = store.get_job(project, job_id)
    if job is None:
        raise not_found("fine_tuning_job", job_id, "fine_tuning_job_id")
    return job
