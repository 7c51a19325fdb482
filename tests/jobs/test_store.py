"""The job stores (SQLite and PostgreSQL, each test on both): migrations, paging, project
isolation, idempotent events, compare-and-set updates."""

from __future__ import annotations

import sqlite3

from tunesmith.jobs.database import open_store
from tunesmith.jobs.models import Checkpoint, FileRecord, Job, ModelRecord, new_id, now
from tunesmith.jobs.sqlite import MIGRATIONS, SQLiteStore


def _job(project="alpha", **kw) -> Job:
    return Job(new_id("job"), project, "smollm2-135m-instruct", "file-x", None,
               {"n_epochs": "auto"}, 0, **kw)


def test_sqlite_schema_is_migrated_once_and_in_wal_mode(tmp_path):
    path = tmp_path / "db.sqlite"
    SQLiteStore(path)
    SQLiteStore(path)  # reopening runs no migration twice
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert open_store(f"sqlite:///{path}") is not None


def test_sqlite_version_1_databases_gain_the_claim_columns(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    for statement in filter(str.strip, MIGRATIONS[0].split(";")):
        db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    old = _job(status="running")
    import json
    from dataclasses import asdict

    body = {k: v for k, v in asdict(old).items() if k not in ("device", "gpus")}
    db.execute("INSERT INTO jobs (id, project, body, status) VALUES (?, ?, ?, ?)",
               (old.id, old.project, json.dumps(body), old.status))
    db.close()
    store = SQLiteStore(path)
    claimed = store.claim_job("w1")  # a running job of a worker from before leases: resumed
    assert claimed.id == old.id and claimed.device == "any"


def test_postgres_schema_is_migrated_once(postgres_url):
    import psycopg

    from tunesmith.jobs.postgres import MIGRATIONS as PG

    open_store(postgres_url).close()
    open_store(postgres_url).close()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(len(PG),)]


def test_lists_page_newest_first_with_after(store):
    jobs = [_job() for _ in range(5)]
    for j in jobs:
        store.add_job(j)
    store.add_job(_job("beta"))
    page, more = store.list_jobs("alpha", None, 2)
    assert [j.id for j in page] == [jobs[4].id, jobs[3].id] and more
    page, more = store.list_jobs("alpha", page[-1].id, 10)
    assert [j.id for j in page] == [jobs[2].id, jobs[1].id, jobs[0].id] and not more
    assert store.list_jobs("alpha", "ftjob-unknown", 10) == ([], False)


def test_projects_see_only_their_own_records(store):
    f = FileRecord(new_id("file"), "alpha", "a.jsonl", "fine-tune", 3, now(), "files/x")
    store.add_file(f)
    job = _job()
    store.add_job(job)
    store.add_model(ModelRecord("ft:m:alpha::1", "alpha", "fine-tuned", "runs/1/final"))
    store.add_model(ModelRecord("base-m", None, "base", "base-m"))
    store.add_model(ModelRecord("base-m", None, "base", "base-m"))  # a restart adds it again
    assert store.get_file("beta", f.id) is None and store.get_file("alpha", f.id) == f
    assert store.get_job("beta", job.id) is None and store.get_job("alpha", job.id) == job
    assert store.get_model("beta", "ft:m:alpha::1") is None
    assert [m.id for m in store.list_models("beta")] == ["base-m"]
    assert [f.id for f in store.list_files("alpha", "fine-tune", None, 10)[0]] == [f.id]
    assert store.delete_file("beta", f.id) is None and store.delete_file("alpha", f.id) == f
    assert store.get_file("alpha", f.id) is None
    store.delete_model("base-m")
    assert store.list_models("beta") == []


def test_events_and_checkpoints_are_recorded_once(store):
    job = _job()
    store.add_job(job)
    assert store.add_event(job.id, "step:1", "Step 1", type="metrics", data={"step": 1})
    assert not store.add_event(job.id, "step:1", "Step 1 again")  # a replayed step
    ck = Checkpoint(new_id("checkpoint"), job.id, now(), 10, "ft:x:ckpt-step-10", {})
    assert store.add_checkpoint(ck)
    assert not store.add_checkpoint(Checkpoint(new_id("checkpoint"), job.id, now(), 10, "x", {}))
    events = store.list_events(job.id, None, 10)[0]
    assert [(e.message, e.data) for e in events] == [("Step 1", {"step": 1})]
    assert store.list_checkpoints(job.id, None, 10)[0] == [ck]


def test_final_jobs_stay_final_and_only_from_is_a_compare_and_set(store):
    job = _job(status="queued")
    store.add_job(job)
    assert store.update_job(job.id, only_from=frozenset({"running"}),
                            status="paused").status == "queued"
    assert store.update_job(job.id, only_from=frozenset({"queued"}),
                            status="running").status == "running"
    assert store.active_jobs_using("file-x") == [job.id]
    store.cancel_job(job.id)
    assert store.update_job(job.id, status="succeeded").status == "cancelled"
    assert store.get_job(None, job.id).status == "cancelled"
    assert store.active_jobs_using("file-x") == []
