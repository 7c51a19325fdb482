"""The `JobStore` on SQLite, the embedded default: the server's threads and its worker processes
share one database file under the service home, in WAL mode. The schema grows by numbered
migrations (below); `PRAGMA user_version` records how many have run."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from tunesmith.jobs.models import FINAL, Job
from tunesmith.jobs.store import CLAIM_ORDER, SQLStore

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
