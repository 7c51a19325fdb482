"""`tunesmith worker` on its own, against PostgreSQL: it claims a job, announces itself under
HOME/workers/, and goes away cleanly on SIGTERM; a database it cannot reach is a clear error."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tunesmith.jobs.database import open_store
from tunesmith.jobs.models import Job, new_id


def _wait(predicate, timeout: float = 60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def test_the_worker_command_claims_jobs_and_leaves_on_sigterm(tmp_path, postgres_url):
    store = open_store(postgres_url)
    job = Job(new_id("job"), "alpha", "m", "file-gone", None, {}, 0, status="queued",
              workdir="runs/x")
    store.add_job(job)
    home = tmp_path / "home"
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith", "worker", "--database",
                             postgres_url, "--home", str(home), "--device", "cpu",
                             "--lease-seconds", "3"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        failed = _wait(lambda: (j := store.get_job(None, job.id)).status == "failed" and j)
        assert failed.error["param"] == "training_file"  # claimed and run by that worker
        (announced,) = (home / "workers").glob("*.json")
        info = json.loads(announced.read_text())
        assert (info["pid"], info["device"], info["gpus"], info["job"]) == (proc.pid, "cpu", 0,
                                                                             None)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert f"tunesmith worker {info['id']}: cpu" in output
    assert not list((home / "workers").glob("*.json"))
    store.close()


def test_an_unreachable_database_is_a_usage_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tunesmith", "worker", "--home", str(tmp_path),
                           "--database", "postgresql://user:hunter2@127.0.0.1:1/db"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "cannot reach the database at 127.0.0.1:1/db" in done.stderr
    assert "hunter2" not in done.stderr
