"""The `JobStore` on PostgreSQL (psycopg 3), for workers on several machines.

`tunesmith serve --database postgresql://USER@HOST/DB` and `tunesmith worker --database ...` on
other machines share one database (and one storage path, `--home`). Most queries are
SQLiteStore's own (`SQLStore`, with `?` turned into `%s`); what differs:

- `FOR UPDATE SKIP LOCKED` lets workers claim jobs concurrently: each takes the first
  claimable row no other transaction holds, so two claims never return the same job.
- Lease times come from the database's clock, so workers' clocks need not agree.
- Migrations are numbered like SQLite's; the `schema_version` table records how many ran, and
  an advisory lock makes a server and its workers starting together run them once.
- Connections come from a small pool (psycopg_pool), in autocommit mode; multi-statement
  changes run in explicit transactions.
"""

from __future__ import annotations

from tunesmith.errors import UsageError
from tunesmith.jobs.models import FINAL, Job
from tunesmith.jobs.store import CLAIM_ORDER, SQLStore

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


class PostgresStore(SQLStore):
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
            return conn.execute(sql.replace("?", "%s"), args).fetchall()

    def _run(self, sql: str, args: tuple = ()) -> int:
        with self._pool.connection() as conn:
            return conn.execute(sql.replace("?", "%s"), args).rowcount

    def _dump(self, body: dict):
        return self._jsonb(body)

    def _load(self, body) -> dict:
        return body  # JSONB comes back as a dict

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
