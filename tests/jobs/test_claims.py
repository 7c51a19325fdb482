"""Workers claiming jobs (each test on SQLite and on PostgreSQL): one claim per job however
they race, leases that run out are claimed again, a lost lease cannot be renewed, and jobs go
only to workers with their device."""

from __future__ import annotations

import threading
import time

from tunesmith.jobs.lease import Lease
from tunesmith.jobs.models import Job, new_id, now


def _job(status="queued", **kw) -> Job:
    return Job(new_id("job"), "alpha", "m", "file-x", None, {}, 0, status=status, **kw)


def test_racing_workers_never_claim_the_same_job(open_db):
    jobs = [_job() for _ in range(30)]
    store = open_db()
    for job in jobs:
        store.add_job(job)
    workers = [open_db() for _ in range(6)]  # a connection each, as separate processes have
    claimed: dict[str, list[str]] = {f"w{i}": [] for i in range(len(workers))}
    start = threading.Barrier(len(workers))

    def claim_all(worker_id: str, store) -> None:
        start.wait()
        while (job := store.claim_job(worker_id, lease_s=60)) is not None:
            claimed[worker_id].append(job.id)
            time.sleep(0.002)  # works on it a moment, as a worker would

    threads = [threading.Thread(target=claim_all, args=(f"w{i}", s))
               for i, s in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    taken = [job_id for ids in claimed.values() for job_id in ids]
    assert sorted(taken) == sorted(j.id for j in jobs)  # every job once, none twice
    assert sum(1 for ids in claimed.values() if ids) >= 2  # they really raced


def test_running_jobs_come_first_then_fifo_and_held_jobs_are_skipped(store):
    first, second, third = _job(), _job(), _job()
    for job in (first, second, third):
        store.add_job(job)
    store.update_job(second.id, status="running")  # a worker died mid-run, before leases
    assert store.claim_job("w1").id == second.id
    assert store.claim_job("w2").id == first.id
    assert store.claim_job("w3").id == third.id
    assert store.claim_job("w4") is None  # all held
    store.release_job(first.id, "w2")
    assert store.claim_job("w4").id == first.id


def test_an_expired_lease_is_claimed_again_and_its_old_holder_cannot_renew(open_db):
    a, b = open_db(), open_db()
    job = _job()
    a.add_job(job)
    assert a.claim_job("w1", lease_s=0.5).id == job.id
    assert b.claim_job("w2", lease_s=30) is None  # still held
    assert a.renew_lease(job.id, "w1", 0.5)
    time.sleep(0.8)  # w1 stopped renewing (it died, or froze)
    assert b.claim_job("w2", lease_s=30).id == job.id
    assert not a.renew_lease(job.id, "w1", 30)  # w2 has it now
    a.release_job(job.id, "w1")  # a late release by w1 frees nothing
    assert a.claim_job("w3", lease_s=30) is None
    assert b.renew_lease(job.id, "w2", 30)


def test_jobs_go_only_to_workers_with_their_device(store):
    cuda2 = _job(device="cuda", gpus=2)
    cpu = _job(device="cpu")
    store.add_job(cuda2)
    store.add_job(cpu)
    assert store.claim_job("gpu1", device="cuda", gpus=1) is None  # too few GPUs; not cpu
    assert store.claim_job("cpu", device="cpu", gpus=0).id == cpu.id
    claimed = store.claim_job("gpu2", device="cuda", gpus=2)
    assert claimed.id == cuda2.id and (claimed.device, claimed.gpus) == ("cuda", 2)
    anywhere = _job()
    store.add_job(anywhere)
    assert store.claim_job("cpu", device="cpu").id == anywhere.id


def test_validating_jobs_are_the_apis_until_the_grace_ends(store):
    fresh = _job("validating_files")
    stale = _job("validating_files", created_at=now() - 600)  # the server stopped meanwhile
    store.add_job(fresh)
    store.add_job(stale)
    assert store.claim_job("w1", validating_grace_s=120).id == stale.id
    assert store.claim_job("w2", validating_grace_s=120) is None
    for status in ("paused", "succeeded"):
        store.add_job(_job(status))
    assert store.claim_job("w2", validating_grace_s=120) is None


def test_a_lease_is_renewed_while_held_and_reports_when_lost(open_db):
    a, b = open_db(), open_db()
    job = _job()
    a.add_job(job)
    a.claim_job("w1", lease_s=0.6)
    with Lease(a, job.id, "w1", lease_s=0.6) as lease:
        time.sleep(1.5)  # longer than the lease: only renewals keep it
        assert b.claim_job("w2", lease_s=0.6) is None and not lease.lost
    assert b.claim_job("w2", lease_s=30).id == job.id  # released on exit
    with Lease(a, job.id, "w1", lease_s=0.3) as lease:
        deadline = time.time() + 5
        while not lease.lost and time.time() < deadline:
            time.sleep(0.05)
        assert lease.lost  # w2 holds it: w1's renewal fails
    assert b.renew_lease(job.id, "w2", 30)  # w1's exit did not release w2's claim
