"""`/v1/fine_tuning/jobs`: create, list, retrieve, cancel, events, checkpoints. The worker process
does the work; these handlers only record and report."""

from __future__ import annotations

import random
import secrets
from typing import Annotated

from fastapi import APIRouter, Query

from tunesmith.jobs.models import FINAL, Job, new_id
from tunesmith.jobs.store import JobStore
from tunesmith.serve import objects
from tunesmith.serve.deps import ProjectDep, StoreDep
from tunesmith.serve.errors import APIError, not_found, ok
from tunesmith.serve.schemas import JobCreate

router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["fine-tuning"])

Limit = Annotated[int, Query(ge=1, le=100)]


@router.post("", responses=ok(objects.FineTuningJob))
def create_job(body: JobCreate, store: StoreDep, project: ProjectDep) -> dict:
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
    model = store.get_model(project, body.model)
    if model is None or model.kind != "base":
        what = ("continued fine-tuning of a fine-tuned model is not available yet"
                if model is not None else "not a model this server offers")
        raise APIError(400, f"Model {body.model!r} cannot be fine-tuned: {what}; GET /v1/models "
                       "lists the base models.", param="model", code="model_not_available")
    hp = (body.method.supervised.hyperparameters if body.method
          else body.hyperparameters) or None
    job = Job(new_id("job"), project, body.model, body.training_file, body.validation_file,
              hp.model_dump() if hp else {"n_epochs": "auto", "batch_size": "auto",
                                          "learning_rate_multiplier": "auto"},
              body.seed if body.seed is not None else random.randrange(2**31),
              body.suffix or None, body.metadata, workdir=f"runs/{secrets.token_hex(8)}")
    store.add_job(job)
    store.add_event(job.id, "created", f"Created fine-tuning job: {job.id}")
    return job.to_api()


@router.get("", responses=ok(objects.JobList))
def list_jobs(store: StoreDep, project: ProjectDep, after: str | None = None,
              limit: Limit = 20) -> dict:
    jobs, more = store.list_jobs(project, after, limit)
    return {"object": "list", "data": [j.to_api() for j in jobs], "has_more": more}


@router.get("/{job_id}", responses=ok(objects.FineTuningJob))
def retrieve_job(job_id: str, store: StoreDep, project: ProjectDep) -> dict:
    return _job(store, project, job_id).to_api()


@router.post("/{job_id}/cancel", responses=ok(objects.FineTuningJob))
def cancel_job(job_id: str, store: StoreDep, project: ProjectDep) -> dict:
    job = _job(store, project, job_id)
    if job.status in FINAL and job.status != "cancelled":
        raise APIError(400, f"Job {job_id} has already {job.status}; it cannot be cancelled.",
                       param="fine_tuning_job_id", code="invalid_state")
    job = store.cancel_job(job_id)
    store.add_event(job_id, "cancel-requested", "Job cancellation requested")
    return job.to_api()


@router.get("/{job_id}/events", responses=ok(objects.EventList))
def list_events(job_id: str, store: StoreDep, project: ProjectDep, after: str | None = None,
                limit: Limit = 20) -> dict:
    _job(store, project, job_id)
    events, more = store.list_events(job_id, after, limit)
    return {"object": "list", "data": [e.to_api() for e in events], "has_more": more}


@router.get("/{job_id}/checkpoints", responses=ok(objects.CheckpointList))
def list_checkpoints(job_id: str, store: StoreDep, project: ProjectDep,
                     after: str | None = None, limit: Limit = 10) -> dict:
    _job(store, project, job_id)
    checkpoints, more = store.list_checkpoints(job_id, after, limit)
    data = [c.to_api() for c in checkpoints]
    return {"object": "list", "data": data, "has_more": more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


def _job(store: JobStore, project: str, job_id: str) -> Job:
    job = store.get_job(project, job_id)
    if job is None:
        raise not_found("fine_tuning_job", job_id, "fine_tuning_job_id")
    return job
