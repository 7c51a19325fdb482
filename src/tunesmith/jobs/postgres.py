"""The `JobStore` on PostgreSQL (psycopg 3), for workers on several machines.

`tunesmith serve --database postgresql://USER@HOST/DB` and `tunesmith worker --database ...` on
other machines share one database (and one storage path, `--home`). The semantics are
SQLiteStore's, query for query; what differs:

- `FOR UPDATE SKIP LOCKED` lets workers claim jobs concurrently: each takes the first
  claimable row no other transaction holds, so two claims never return the same job.
- Lease times come from the database's clock, so workers' clocks need not agree.
- Migrations are numbered like SQLite's; the `schema_version` table records how many ran, and
  an advisory lock makes a server and its workers starting together run them once.
- Connections come from a small pool (psycopg_pool), in autocommit mode; multi-statement
  changes run in explicit transactions.
"""

from __future__ import annotations

from dataclasses import asdict

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
from tunesmith.jobs.store import CLAIM_ORDER, _file, _model

MIGRATIONS: list[str] = [
    # 1: the schema of SQLite's migrations 1-2 (claims and leases included)
    """
    CREATE TABLE files (
        seq BIGSERIAL PRIMARY KEY, id TEXT UNIQUE NOT NULL, project TEXT NOT NULL,
        filename TEXT NOT NULL, purpose TEXT NOT NULL, bytes BIGINT NOT NULL,
        created_at BIGINT NOT NULL, path TEXT NOT NULL, status TEXT NOT NULL,
        status_details TEXT, deleted BOOLEAN NOT NULL DEFAULT FALSE);
    CREATE TABLE jobs (
        seq BIGSERIAL PRIMARY KEY, id TEXT UNIQUE NOT NULL, project TEXT NOT NULL,
        body JSONB NOT NULL, status TEXT NOT NULL, created_at BIGINT NOT NULL,
        device TEXT NOT NULL DEFAULT 'any', gpus INTEGER NOT NULL DEFAULT 0,
        worker_id TEXT, lease_until DOUBLE PRECISION);
    CREATE INDEX jobs_status ON jobs (status, seq);
    CREATE INDEX jobs_project ON jobs (project, seq);
    CREATE TABLE events (
        seq BIGSERIAL PRIMARY KEY, id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL,
        key TEXT NOT NULL, body JSONB NOT NULL, UNIQUE (job_id, key));
    CREATE TABLE checkpoints (
        seq BIGSERIAL PRIMARY KEY, id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL,
        step INTEGER NOT NULL, body JSONB NOT NULL, UNIQUE (job_id, step));
    CREATE TABLE models (
        seq BIGSERIAL PRIMARY KEY, id TEXT UNIQUE NOT NULL, project TEXT,
        kind TEXT NOT NULL, spec TEXT NOT NULL, created_at BIGINT NOT NULL, job_id TEXT,
        deleted BOOLEAN NOT NULL DEFAULT FALSE);
    """,
]

NOW = "extract(epoch from clock_timestamp())::float8"
"""The database's clock in seconds since the epoch: what leases are measured against."""

MIGRATION_LOCK = 0x7475_6E65  # "tune": any constant the service's database uses for nothing else


class PostgresStore:
    """The `JobStore` on PostgreSQL. `url`: `postgresql://USER[:PASSWORD]@HOST[:PORT]/DB`
    (any libpq connection string).

    Raises:
        UsageError: psycopg is not installed, or the database cannot be reached.
    """

    def __init__(self, url: str, *, max_connections: int = 8, connect_timeout_s: float = 15):
        try:
            import psycopg
            from psycopg.rows import dict_row
            from psycopg.types.json import Jsonb
            from psycopg_pool import ConnectionPool
        except ImportError as e:
            raise UsageError("a postgresql:// database needs psycopg: pip install "
                             "'tunesmith[serve]' (or 'psycopg[binary,pool]').") from e
        # One plain connection first: a wrong URL fails now with libpq's reason, where the
        # pool would keep retrying in the background.
        try:
            psycopg.connect(url, connect_timeout=max(1, round(connect_timeout_s))).close()
        except psycopg.Error as e:
            where = url.rsplit("@", 1)[-1]  # never echo a password
            raise UsageError(f"cannot reach the database at {where}: "
                             f"{str(e).strip() or type(e).__name__}") from e
        self._jsonb = Jsonb
        self._pool = ConnectionPool(url, min_size=1, max_size=max_connections, open=True,
                                    kwargs={"autocommit": True, "row_factory": dict_row},
                                    name="tunesmith")
        self._migrate()

    def close(self) -> None:
        self._pool.close()

    def _migrate(self) -> None:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                conn.execute("INSERT INTO schema_version VALUES (0)")
            version = row["version"] if row is not None else 0
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                conn.execute(script)
                conn.execute("UPDATE schema_version SET version = %s", (number,))

    def _all(self, sql: str, args: tuple = ()) -> list[dict]:
        with self._pool.connection() as conn:
            return conn.execute(sql, args).fetchall()

    def _run(self, sql: str, args: tuple = ()) -> int:
        with self._pool.connection() as conn:
            return conn.execute(sql, args).rowcount

    def _page(self, table: str, where: str, args: tuple, after: str | None,
              limit: int) -> tuple[list[dict], bool]:
        """Rows newest first, after the row with id `after` (OpenAI's cursor), and whether
        more follow."""
        if after is not None:
            where += f" AND seq < COALESCE((SELECT seq FROM {table} WHERE id = %s), -1)"
            args += (after,)
        rows = self._all(f"SELECT * FROM {table} WHERE {where} ORDER BY seq DESC LIMIT %s",
                         args + (limit + 1,))
        return rows[:limit], len(rows) > limit

    # ---- files ----------------------------------------------------------------------------

    def add_file(self, record: FileRecord) -> None:
        d = asdict(record)
        self._run(f"INSERT INTO files ({', '.join(d)}) VALUES ({', '.join(['%s'] * len(d))})",
                  tuple(d.values()))

    def get_file(self, project: str | None, file_id: str) -> FileRecord | None:
        rows = self._all("SELECT * FROM files WHERE id = %s AND NOT deleted", (file_id,))
        if not rows or (project is not None and rows[0]["project"] != project):
            return None
        return _file(rows[0])

    def list_files(self, project: str, purpose: str | None, after: str | None,
                   limit: int) -> tuple[list[FileRecord], bool]:
        where, args = "project = %s AND NOT deleted", (project,)
        if purpose:
            where, args = where + " AND purpose = %s", args + (purpose,)
        rows, more = self._page("files", where, args, after, limit)
        return [_file(r) for r in rows], more

    def delete_file(self, project: str, file_id: str) -> FileRecord | None:
        record = self.get_file(project, file_id)
        if record is not None:
            self._run("UPDATE files SET deleted = TRUE WHERE id = %s", (file_id,))
        return record

    # ---- jobs -----------------------------------------------------------------------------

    def add_job(self, job: Job) -> None:
        self._run("INSERT INTO jobs (id, project, body, status, created_at, device, gpus) "
                  "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                  (job.id, job.project, self._jsonb(asdict(job)), job.status, job.created_at,
                   job.device, job.gpus))

    def get_job(self, project: str | None, job_id: str) -> Job | None:
        rows = self._all("SELECT body FROM jobs WHERE id = %s", (job_id,))
        job = Job(**rows[0]["body"]) if rows else None
        return None if job is None or (project is not None and job.project != project) else job

    def list_jobs(self, project: str, after: str | None, limit: int) -> tuple[list[Job], bool]:
        rows, more = self._page("jobs", "project = %s", (project,), after, limit)
        return [Job(**r["body"]) for r in rows], more

    def update_job(self, job_id: str, *, only_from: frozenset[str] | None = None,
                   **changes) -> Job:
        """SQLiteStore.update_job: a final job stays final; `only_from` is a compare-and-set
        (the row is locked from read to write)."""
        with self._pool.connection() as conn, conn.transaction():
            row = conn.execute("SELECT body FROM jobs WHERE id = %s FOR UPDATE",
                               (job_id,)).fetchone()
            if row is None:
                raise KeyError(job_id)
            body = row["body"]
            if body["status"] not in FINAL and (only_from is None or body["status"] in only_from):
                body.update(changes)
                conn.execute("UPDATE jobs SET body = %s, status = %s WHERE id = %s",
                             (self._jsonb(body), body["status"], job_id))
        return Job(**body)

    def cancel_job(self, job_id: str) -> Job:
        return self.update_job(job_id, status="cancelled", finished_at=now())

    def active_jobs_using(self, file_id: str) -> list[str]:
        """Ids of jobs not yet final whose training or validation file is `file_id`."""
        rows = self._all("SELECT id FROM jobs WHERE status NOT IN ('succeeded', 'failed', "
                         "'cancelled') AND (body->>'training_file' = %s OR "
                         "body->>'validation_file' = %s) ORDER BY seq", (file_id, file_id))
        return [r["id"] for r in rows]

    def claim_job(self, worker_id: str, *, device: str = "cpu", gpus: int = 0,
                  lease_s: float = 60, validating_grace_s: float = 0) -> Job | None:
        """SQLiteStore.claim_job. `SKIP LOCKED` passes over rows another claim is taking; a
        row it claimed meanwhile is re-checked after that claim commits (READ COMMITTED), so
        its fresh lease excludes it."""
        with self._pool.connection() as conn, conn.transaction():
            row = conn.execute(
                f"SELECT id, body FROM jobs WHERE (lease_until IS NULL OR lease_until < {NOW}) "
                "AND (status IN ('running', 'queued') OR (status = 'validating_files' "
                f"AND created_at <= {NOW} - %s)) AND device IN ('any', %s) AND gpus <= %s "
                f"ORDER BY {CLAIM_ORDER} LIMIT 1 FOR UPDATE SKIP LOCKED",
                (validating_grace_s, device, gpus)).fetchone()
            if row is None:
                return None
            conn.execute(f"UPDATE jobs SET worker_id = %s, lease_until = {NOW} + %s "
                         "WHERE id = %s", (worker_id, lease_s, row["id"]))
        return Job(**row["body"])

    def renew_lease(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        return self._run(f"UPDATE jobs SET lease_until = {NOW} + %s WHERE id = %s AND "
                         "worker_id = %s", (lease_s, job_id, worker_id)) == 1

    def release_job(self, job_id: str, worker_id: str) -> None:
        self._run("UPDATE jobs SET worker_id = NULL, lease_until = NULL WHERE id = %s AND "
                  "worker_id = %s", (job_id, worker_id))

    # ---- events and checkpoints -----------------------------------------------------------

    def add_event(self, job_id: str, key: str, message: str, *, level: str = "info",
                  type: str = "message", data: dict | None = None) -> bool:
        """Record an event once: a second event with the same `key` is ignored."""
        event = JobEvent(new_id("event"), job_id, now(), level, message, type, data)
        return self._run("INSERT INTO events (id, job_id, key, body) VALUES (%s, %s, %s, %s) "
                         "ON CONFLICT DO NOTHING",
                         (event.id, job_id, key, self._jsonb(asdict(event)))) == 1

    def list_events(self, job_id: str, after: str | None,
                    limit: int) -> tuple[list[JobEvent], bool]:
        rows, more = self._page("events", "job_id = %s", (job_id,), after, limit)
        return [JobEvent(**r["body"]) for r in rows], more

    def add_checkpoint(self, checkpoint: Checkpoint) -> bool:
        return self._run(
            "INSERT INTO checkpoints (id, job_id, step, body) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING", (checkpoint.id, checkpoint.job_id, checkpoint.step,
                                       self._jsonb(asdict(checkpoint)))) == 1

    def list_checkpoints(self, job_id: str, after: str | None,
                         limit: int) -> tuple[list[Checkpoint], bool]:
        rows, more = self._page("checkpoints", "job_id = %s", (job_id,), after, limit)
        return [Checkpoint(**r["body"]) for r in rows], more

    # ---- models ---------------------------------------------------------------------------

    def add_model(self, model: ModelRecord) -> None:
        d = asdict(model)
        self._run(f"INSERT INTO models ({', '.join(d)}) VALUES ({', '.join(['%s'] * len(d))}) "
                  "ON CONFLICT DO NOTHING", tuple(d.values()))

    def get_model(self, project: str | None, model_id: str) -> ModelRecord | None:
        rows = self._all("SELECT * FROM models WHERE id = %s AND NOT deleted", (model_id,))
        if not rows:
            return None
        model = _model(rows[0])
        visible = project is None or model.project is None or model.project == project
        return model if visible else None

    def list_models(self, project: str) -> list[ModelRecord]:
        rows = self._all("SELECT * FROM models WHERE NOT deleted AND kind != 'checkpoint' AND "
                         "(project IS NULL OR project = %s) ORDER BY seq", (project,))
        return [_model(r) for r in rows]

    def delete_model(self, model_id: str) -> None:
        self._run("UPDATE models SET deleted = TRUE WHERE id = %s", (model_id,))
