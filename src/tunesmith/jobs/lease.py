"""A worker's hold on the job it runs: renewed from a background thread while the job runs.

    claim_job (lease_until = now + lease_s)
       |-- every lease_s / 3: renew_lease -> True: held on
       |                                  -> False: another worker claimed it -> lost
       `-- renewals failing (database unreachable) for lease_s: lost too, as by then the
           lease may have run out and another worker may have claimed the job

A lost lease marks nothing in the store: the worker stops training at its next step and leaves
the job to whoever holds it now, which resumes it from its newest checkpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Self

from tunesmith.jobs.store import JobStore

log = logging.getLogger(__name__)


class Lease:
    """Renews `worker_id`'s lease on `job_id` until `release()`; `lost` says whether it ended
    without us (then the job is someone else's).

    Example:
        with Lease(store, job.id, worker_id, lease_s=60) as lease:
            train(..., should_stop=lambda: lease.lost)
    """

    def __init__(self, store: JobStore, job_id: str, worker_id: str, lease_s: float) -> None:
        self.store, self.job_id, self.worker_id, self.lease_s = store, job_id, worker_id, lease_s
        self._lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{job_id}", daemon=True)

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Stop renewing and free the job for others (unless another worker has it now)."""
        if self._done.is_set():
            return
        self._done.set()
        self._thread.join()
        if not self.lost:
            self.store.release_job(self.job_id, self.worker_id)

    def _renew(self) -> None:
        last_ok = time.monotonic()
        while not self._done.wait(self.lease_s / 3):
            try:
                if not self.store.renew_lease(self.job_id, self.worker_id, self.lease_s):
                    log.warning("lost the lease on %s: another worker claimed it", self.job_id)
                    self._lost.set()
                    return
                last_ok = time.monotonic()
            except Exception as e:  # noqa: BLE001 - any backend's error: retry
                if time.monotonic() - last_ok >= self.lease_s:
                    log.warning("lost the lease on %s: no renewal for %.0f s (%s)", self.job_id,
                                self.lease_s, e)
                    self._lost.set()
                    return
                log.warning("renewing the lease on %s failed (%s); retrying", self.job_id, e)
