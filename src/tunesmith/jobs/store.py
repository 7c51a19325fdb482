"""Where the service keeps its records: the `JobStore` protocol and its SQLite implementation.

SQLite in WAL mode is the embedded default: the server's threads and its worker processes share
one database file under the service home. The schema grows by numbered migrations (below);
`PRAGMA user_version` records how many have run. PostgreSQL (`jobs/postgres.py`) implements the
same protocol for workers on other machines; `open_store(url)` picks one by the URL's scheme, and
routes and workers only see `JobStore`.

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
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

from tunesmith.errors import UsageError
from tunesmith.jobs.models import (
    FINAL,
    Checkpoint,
    FileRecord,
    Job,
    JobEvent,
    ModelRecord,
    new_id,
    now,
)

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE files (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, project TEXT NOT NULL,
        filename TEXT NOT NULL, purpose TEXT NOT NULL, bytes INTEGER NOT NULL,
        created_at INTEGER NOT NULL, path TEXT NOT NULL, status TEXT NOT NULL,
        status_details TEXT, deleted INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, project TEXT NOT NULL,
        body TEXT NOT NULL, status TEXT NOT NULL);
    CREATE INDEX jobs_status ON jobs (status, seq);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL,
        key TEXT NOT NULL, body TEXT NOT NULL, UNIQUE (job_id, key));
    CREATE TABLE checkpoints (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL,
        step INTEGER NOT NULL, body TEXT NOT NULL, UNIQUE (job_id, step));
    CREATE TABLE models (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, project TEXT,
        kind TEXT NOT NULL, spec TEXT NOT NULL, created_at INTEGER NOT NULL, job_id TEXT,
        deleted INTEGER NOT NULL DEFAULT 0);
    """,
    # 2: claims and leases; what the claim query filters on becomes a column
    """
    ALTER TABLE jobs ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN device TEXT NOT NULL DEFAULT 'any';
    ALTER TABLE jobs ADD COLUMN gpus INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN worker_id TEXT;
    ALTER TABLE jobs ADD COLUMN lease_until REAL;
    UPDATE jobs SET created_at = json_extract(body, '$.created_at');
    """,
]

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


def open_store(url: str) -> JobStore:
    """`sqlite:///path/to/tunesmith.db` (or a plain path), or `postgresql://user@host/db`
    -> a store.

    Raises:
        UsageError: an unknown scheme; PostgreSQL without psycopg installed or unreachable.
    """
    if url.startswith(("postgresql://", "postgres://")):
        from tunesmith.jobs.postgres import PostgresStore

        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        return SQLiteStore(Path(url[len("sqlite:///"):]))
    if "://" in url:
        raise UsageError(f"database URL {url.split('://')[0]}://...: use sqlite:///PATH or "
                         "postgresql://USER@HOST/DB.")
    return SQLiteStore(Path(url))


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


class SQLiteStore(SQLStore):
    """The `JobStore` on stdlib sqlite3: one connection per process, serialised by a lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                    for statement in filter(str.strip, script.split(";")):
                        self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {number}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _all(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _run(self, sql: str, args: tuple = ()) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    def update_job(self, job_id: str, *, only_from: frozenset[str] | None = None,
                   **changes) -> Job:
        """Change fields of a job that is not final yet (a final job is returned unchanged:
        a worker finishing a job the API just cancelled must not revive it); with `only_from`,
        only while its status is one of those (an atomic compare-and-set)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                body = json.loads(self._db.execute("SELECT body FROM jobs WHERE id = ?",
                                                   (job_id,)).fetchone()["body"])
                if body["status"] not in FINAL and (only_from is None
                                                    or body["status"] in only_from):
                    body.update(changes)
                    self._db.execute("UPDATE jobs SET body = ?, status = ? WHERE id = ?",
                                     (json.dumps(body), body["status"], job_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return Job(**body)

    def active_jobs_using(self, file_id: str) -> list[str]:
        """Ids of jobs not yet final whose training or validation file is `file_id`."""
        rows = self._all("SELECT body FROM jobs WHERE status NOT IN ('succeeded', 'failed', "
                         "'cancelled') ORDER BY seq")
        jobs = [Job(**json.loads(r["body"])) for r in rows]
        return [j.id for j in jobs if file_id in (j.training_file, j.validation_file)]

    def claim_job(self, worker_id: str, *, device: str = "cpu", gpus: int = 0,
                  lease_s: float = 60, validating_grace_s: float = 0) -> Job | None:
        """Take the job `worker_id` should run, for `lease_s` seconds, or None.

        Claimable: a job nobody holds (no lease, or an expired one: its worker died) that is
        `running` (to resume it, first), `queued` (oldest first), or `validating_files` for
        longer than `validating_grace_s` (the API validates it until then: a server that
        stopped mid-validation leaves it to a worker); whose device is `any` or `device`, and
        which needs at most `gpus` GPUs. One claim at a time: `BEGIN IMMEDIATE` makes this
        connection the only writer until it commits.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                t = time.time()
                row = self._db.execute(
                    "SELECT id, body FROM jobs WHERE (lease_until IS NULL OR lease_until < ?) "
                    "AND (status IN ('running', 'queued') OR (status = 'validating_files' "
                    "AND created_at <= ?)) AND device IN ('any', ?) AND gpus <= ? "
                    f"ORDER BY {CLAIM_ORDER} LIMIT 1",
                    (t, t - validating_grace_s, device, gpus)).fetchone()
                if row is not None:
                    self._db.execute("UPDATE jobs SET worker_id = ?, lease_until = ? "
                                     "WHERE id = ?", (worker_id, t + lease_s, row["id"]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return Job(**json.loads(row["body"])) if row is not None else None

    def renew_lease(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        """Extend `worker_id`'s lease on the job; False if another worker claimed it since."""
        return self._run("UPDATE jobs SET lease_until = ? WHERE id = ? AND worker_id = ?",
                         (time.time() + lease_s, job_id, worker_id)) == 1

    def release_job(self, job_id: str, worker_id: str) -> None:
        """Give up the lease (the job is final, paused, or handed back) if still held."""
        self._run("UPDATE jobs SET worker_id = NULL, lease_until = NULL "
                  "WHERE id = ? AND worker_id = ?", (job_id, worker_id))


def _file(row: sqlite3.Row | Mapping) -> FileRecord:
    return FileRecord(**{k: row[k] for k in row.keys() if k not in ("seq", "deleted")})  # noqa: SIM118


def _model(row: sqlite3.Row | Mapping) -> ModelRecord:
    return ModelRecord(**{k: row[k] for k in row.keys() if k not in ("seq", "deleted")})  # noqa: SIM118
