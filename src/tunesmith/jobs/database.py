"""Opening the service's database from its URL: SQLite (embedded, one machine) or PostgreSQL
(workers on several machines). Routes and workers only see the `JobStore` protocol."""

from __future__ import annotations

from pathlib import Path

from tunesmith.errors import UsageError
from tunesmith.jobs.postgres import PostgresStore
from tunesmith.jobs.sqlite import SQLiteStore
from tunesmith.jobs.store import DATABASE_ENV, JobStore, database_url

__all__ = ["DATABASE_ENV", "database_url", "open_store"]


def open_store(url: str) -> JobStore:
    """`sqlite:///path/to/tunesmith.db` (or a plain path), or `postgresql://user@host/db`
    -> a store.

    Raises:
        UsageError: an unknown scheme; PostgreSQL without psycopg installed or unreachable.
    """
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        return SQLiteStore(Path(url[len("sqlite:///"):]))
    if "://" in url:
        raise UsageError(f"database URL {url.split('://')[0]}://...: use sqlite:///PATH or "
                         "postgresql://USER@HOST/DB.")
    return SQLiteStore(Path(url))
