"""A throw-away PostgreSQL server for tests: `initdb` into a temporary folder, `pg_ctl start` on
a free port of 127.0.0.1, a fresh database per test, `pg_ctl stop` at the end.

PostgreSQL refuses to run as root, so under root the server runs as the `postgres` user (with
`runuser`), in a folder that user owns. Tests using it are skipped, with the reason, where the
binaries, psycopg or (as root) the `postgres` user are missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(folder, name), os.X_OK):
            return os.path.join(folder, name)
    return None


def unavailable() -> str | None:
    """Why no test server can run here, or None."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        return "psycopg[binary,pool] is not installed (pip install 'tunesmith[serve]')"
    for name in ("initdb", "pg_ctl", "postgres"):
        if _binary(name) is None:
            return f"PostgreSQL's {name} is not on PATH nor in /usr/lib/postgresql/*/bin"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root without `runuser` to run PostgreSQL as `postgres`"
    return None


class Postgres:
    """One server for the test session; `new_database()` gives each test its own database."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="tunesmith-pg-")
        self.data = os.path.join(self.folder, "data")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._as = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> Postgres:
        self._run(_binary("initdb"), "-D", self.data, "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        # fsync off: a test database need not survive a power cut, and it is much faster.
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=300")
        self._run(_binary("pg_ctl"), "-D", self.data, "-l", os.path.join(self.folder, "log"),
                  "-w", "-o", options, "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(_binary("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
