"""The SQLite job store: migrations, paging, project isolation, idempotent events."""

from __future__ import annotations

import sqlite3

from tunesmith.jobs.models import Checkpoint, FileRecord, Job, ModelRecord, new_id, now
from tunesmith.jobs.store import MIGRATIONS, SQLiteStore, open_store


def _job(project="alpha", **kw) -> Job:
    return Job(new_id("job"), project, "smollm2-135m-instruct", "file-x", None,
               {"n_epochs": "auto"}, 0, **kw)


def test_schema_is_migrated_once_and_in_wal_mode(tmp_path):
    path = tmp_path / "db.sqlite"
    SQLiteStore(path)
    SQLiteStore(path)  # reopening runs no migration twice
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert open_store(f"sqlite:///{path}") is not None


def test_lists_page_newest_first_with_after(tmp_path):
    store = SQLiteStore(tmp_path / "db")
    jobs = [_job() for _ in range(5)]
    for j in jobs:
        store.add_job(j)
    store.add_job(_job("beta"))
    page, more = store.list_jobs("alpha", None, 2)
    assert [j.id for j in page] == [jobs[4].id, jobs[3].id] and more
    page, more = store.list_jobs("alpha", page[-1].id, 10)
    assert [j.id for j in page] == [jobs[2].id, jobs[1].id, jobs[0].id] and not more


def test_projects_see_only_their_own_records(tmp_path):
    store = SQLiteStore(tmp_path / "db")
    f = FileRecord(new_id("file"), "alpha", "a.jsonl", "fine-tune", 3, now(), "files/x")
    store.add_file(f)
    job = _job()
    store.add_job(job)
    store.add_model(ModelRecord("ft:m:alpha::1", "alpha", "fine-tuned", "runs/1/final"))
    store.add_model(ModelRecord("base-m", None, "base", "base-m"))
    assert store.get_file("beta", f.id) is None and store.get_file("alpha", f.id) == f
    assert store.get_job("beta", job.id) is None and store.get_job("alpha", job.id) == job
    assert store.get_model("beta", "ft:m:alpha::1") is None
    assert [m.id for m in store.list_models("beta")] == ["base-m"]
    assert store.delete_file("beta", f.id) is None and store.delete_file("alpha", f.id) == f
    assert store.get_file("alpha", f.id) is None


def test_events_and_checkpoints_are_recorded_once(tmp_path):
    store = SQLiteStore(tmp_path / "db")
    job = _job()
    store.add_job(job)
    assert store.add_event(job.id, "step:1", "Step 1")
    assert not store.add_event(job.id, "step:1", "Step 1 again")  # a replayed step
    ck = Checkpoint(new_id("checkpoint"), job.id, now(), 10, "ft:x:ckpt-step-10", {})
    assert store.add_checkpoint(ck)
    assert not store.add_checkpoint(Checkpoint(new_id("checkpoint"), job.id, now(), 10, "x", {}))
    assert len(store.list_events(job.id, None, 10)[0]) == 1
    assert len(store.list_checkpoints(job.id, None, 10)[0]) == 1


def test_final_jobs_stay_final_and_running_jobs_come_first(tmp_path):
    store = SQLiteStore(tmp_path / "db")
    first, second = _job(), _job()
    store.add_job(first)
    store.add_job(second)
    assert store.next_job().id == first.id  # FIFO
    store.update_job(second.id, status="running")
    assert store.next_job().id == second.id  # a job interrupted mid-run resumes first
    store.cancel_job(second.id)
    assert store.update_job(second.id, status="succeeded").status == "cancelled"
    assert store.next_job().id == first.id
