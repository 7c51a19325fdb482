"""Where the service keeps its records: the `JobStore` protocol, and the queries its two
implementations share (`SQLStore`): SQLite (`jobs/sqlite.py`, the embedded default) and
PostgreSQL (`jobs/postgres.py`, for workers on other machines). `jobs/database.py` opens one by
the URL's scheme; routes and workers only see `JobStore`.

Lists are newest first and paged like OpenAI's: `after` is the id of the last item of the
previous page, and the result says whether more follow.

Workers take jobs by claiming them with a lease (`claim_job`): the job's `worker_id` and
`lease_until` columns say who runs it until when. The worker renews the lease while it works;
a job whose lease ran out (its worker died) is claimed again by another worker, which resumes
it from its newest checkpoint. Lease times are seconds since the epoch on the database's clock
(PostgreSQL) or this machine's (SQLite, one machine), so workers' clocks never need to agree.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

from tunesmith.jobs.models import (
    Checkpoint,
    FileRecord,
    Job,
    JobEvent,
    ModelRecord,
    new_id,
    now,
)

DATABASE_ENV = "TUNESMITH_DATABASE_URL"
"""The environment variable naming the database when no `--database` is given."""


class JobStore(Protocol):
    """What the routes and the worker need from storage."""

    def add_file(self, record: FileRecord) -> None: ...
    def get_file(self, project: str | None, file_id: str) -> FileRecord | None: ...
    def list_files(self, project: str, purpose: str | None, after: str | None,
                   limit: int) -> tuple[list[FileRecord], bool]: ...
    def delete_file(self, project: str, file_id: str) -> FileRecord | None: ...
    def add_job(self, job: Job) -> None: ...
    def get_job(self, project: str | None, job_id: str) -> Job | None: ...
    def list_jobs(self, project: str, after: str | None, limit: int) -> tuple[list[Job], bool]: ...
    def update_job(self, job_id: str, *, only_from: frozenset[str] | None = None,
                   **changes) -> Job: ...
    def cancel_job(self, job_id: str) -> Job: ...
    def active_jobs_using(self, file_id: str) -> list[str]: ...
    def claim_job(self, worker_id: str, *, device: str = "cpu", gpus: int = 0,
                  lease_s: float = 60, validating_grace_s: float = 0) -> Job | None: ...
    def renew_lease(self, job_id: str, worker_id: str, lease_s: float) -> bool: ...
    def release_job(self, job_id: str, worker_id: str) -> None: ...
    def add_event(self, job_id: str, key: str, message: str, *, level: str = "info",
                  type: str = "message", data: dict | None = None) -> bool: ...
    def list_events(self, job_id: str, after: str | None,
                    limit: int) -> tuple[list[JobEvent], bool]: ...
    def add_checkpoint(self, checkpoint: Checkpoint) -> bool: ...
    def list_checkpoints(self, job_id: str, after: str | None,
                         limit: int) -> tuple[list[Checkpoint], bool]: ...
    def add_model(self, model: ModelRecord) -> None: ...
    def get_model(self, project: str | None, model_id: str) -> ModelRecord | None: ...
    def list_models(self, project: str) -> list[ModelRecord]: ...
    def delete_model(self, model_id: str) -> None: ...
    def close(self) -> None: ...


def database_url(given: str | None, home: Path) -> str:
    """The database to use: `given` (a `--database` flag), else $TUNESMITH_DATABASE_URL, else
    SQLite in the service home."""
    return given or os.environ.get(DATABASE_ENV) or f"sqlite:///{home / 'tunesmith.db'}"


CLAIM_ORDER = "CASE status WHEN 'running' THEN 0 ELSE 1 END, seq"
"""How claimable jobs are ranked: an interrupted job first (to resume it), then FIFO."""


class SQLStore:
    """What both stores run alike: every query but the claim, the compare-and-set update and
    the migrations, written once with `?` placeholders. A backend supplies `_all` (rows as
    mappings) and `_run` (rows changed), and how a `body` column is written and read."""

    _all: Callable[..., list]
    _run: Callable[..., int]

    def _dump(self, body: dict):
        """A record as its `body` column holds it."""
        return json.dumps(body)

    def _load(self, body) -> dict:
        return json.loads(body)

    def _page(self, table: str, where: str, args: tuple, after: str | None,
              limit: int) -> tuple[list, bool]:
        """Rows newest first, after the row with id `after` (OpenAI's cursor), and whether
        more follow."""
        if after is not None:
            where += f" AND seq < COALESCE((SELECT seq FROM {table} WHERE id = ?), -1)"
            args += (after,)
        rows = self._all(f"SELECT * FROM {table} WHERE {where} ORDER BY seq DESC LIMIT ?",
                         args + (limit + 1,))
        return rows[:limit], len(rows) > limit

    # ---- files ----------------------------------------------------------------------------

    def add_file(self, record: FileRecord) -> None:
        d = asdict(record)
        self._run(f"INSERT INTO files ({', '.join(d)}) VALUES ({', '.join('?' * len(d))})",
                  tuple(d.values()))

    def get_file(self, project: str | None, file_id: str) -> FileRecord | None:
        rows = self._all("SELECT * FROM files WHERE id = ? AND NOT deleted", (file_id,))
        if not rows or (project is not None and rows[0]["project"] != project):
            return None
        return _file(rows[0])

    def list_files(self, project: str, purpose: str | None, after: str | None,
                   limit: int) -> tuple[list[FileRecord], bool]:
        where, args = "project = ? AND NOT deleted", (project,)
        if purpose:
            where, args = where + " AND purpose = ?", args + (purpose,)
        rows, more = self._page("files", where, args, after, limit)
        return [_file(r) for r in rows], more

    def delete_file(self, project: str, file_id: str) -> FileRecord | None:
        record = self.get_file(project, file_id)
        if record is not None:
            self._run("UPDATE files SET deleted = TRUE WHERE id = ?", (file_id,))
        return record

    # ---- jobs -----------------------------------------------------------------------------

    def add_job(self, job: Job) -> None:
        self._run("INSERT INTO jobs (id, project, body, status, created_at, device, gpus) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?)", (job.id, job.project, self._dump(asdict(job)),
                                                   job.status, job.created_at, job.device,
                                                   job.gpus))

    def get_job(self, project: str | None, job_id: str) -> Job | None:
        rows = self._all("SELECT body FROM jobs WHERE id = ?", (job_id,))
        job = Job(**self._load(rows[0]["body"])) if rows else None
        return None if job is None or (project is not None and job.project != project) else job

    def list_jobs(self, project: str, after: str | None, limit: int) -> tuple[list[Job], bool]:
        rows, more = self._page("jobs", "project = ?", (project,), after, limit)
        return [Job(**self._load(r["body"])) for r in rows], more

    def cancel_job(self, job_id: str) -> Job:
        return self.update_job(job_id, status="cancelled", finished_at=now())

    # ---- events and checkpoints -----------------------------------------------------------

    def add_event(self, job_id: str, key: str, message: str, *, level: str = "info",
                  type: str = "message", data: dict | None = None) -> bool:
        """Record an event once: a second event with the same `key` (a step replayed after a
        resume) is ignored. Returns whether it was added."""
        event = JobEvent(new_id("event"), job_id, now(), level, message, type, data)
        return self._run("INSERT INTO events (id, job_id, key, body) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT DO NOTHING",
                         (event.id, job_id, key, self._dump(asdict(event)))) == 1

    def list_events(self, job_id: str, after: str | None,
                    limit: int) -> tuple[list[JobEvent], bool]:
        rows, more = self._page("events", "job_id = ?", (job_id,), after, limit)
        return [JobEvent(**self._load(r["body"])) for r in rows], more

    def add_checkpoint(self, checkpoint: Checkpoint) -> bool:
        return self._run(
            "INSERT INTO checkpoints (id, job_id, step, body) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING", (checkpoint.id, checkpoint.job_id, checkpoint.step,
                                       self._dump(asdict(checkpoint)))) == 1

    def list_checkpoints(self, job_id: str, after: str | None,
                         limit: int) -> tuple[list[Checkpoint], bool]:
        rows, more = self._page("checkpoints", "job_id = ?", (job_id,), after, limit)
        return [Checkpoint(**self._load(r["body"])) for r in rows], more

    # ---- models ---------------------------------------------------------------------------

    def add_model(self, model: ModelRecord) -> None:
        d = asdict(model)
        self._run(f"INSERT INTO models ({', '.join(d)}) VALUES ({', '.join('?' * len(d))}) "
                  "ON CONFLICT DO NOTHING", tuple(d.values()))

    def get_model(self, project: str | None, model_id: str) -> ModelRecord | None:
        rows = self._all("SELECT * FROM models WHERE id = ? AND NOT deleted", (model_id,))
        if not rows:
            return None
        model = _model(rows[0])
        visible = project is None or model.project is None or model.project == project
        return model if visible else None

    def list_models(self, project: str) -> list[ModelRecord]:
        rows = self._all("SELECT * FROM models WHERE NOT deleted AND kind != 'checkpoint' AND "
                         "(project IS NULL OR project = ?) ORDER BY seq", (project,))
        return [_model(r) for r in rows]

    def delete_model(self, model_id: str) -> None:
        self._run("UPDATE models SET deleted = TRUE WHERE id = ?", (model_id,))


def _file(row: Mapping) -> FileRecord:
    return FileRecord(**{k: row[k] for k in row.keys() if k not in ("seq", "deleted")})  # noqa: SIM118


def _model(row: Mapping) -> ModelRecord:
    return ModelRecord(**{k: row[k] for k in row.keys() if k not in ("seq", "deleted")})  # noqa: SIM118
