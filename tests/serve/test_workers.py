"""Several workers over one PostgreSQL database: the openai-client flow of test_e2e unchanged
on `serve --workers 2 --database postgresql://...`, a worker SIGKILLed mid-job (another takes
the job over when its lease runs out), and jobs that name a device."""

from __future__ import annotations

import json
import os
import signal

from fastapi.testclient import TestClient

import tests.serve.test_e2e as e2e
from tests.serve.conftest import wait_for
from tunesmith.jobs.database import open_store
from tunesmith.serve.app import create_app
from tunesmith.serve.deps import ServeSettings

FINAL = {"succeeded", "failed", "cancelled"}
LEASE = ["--lease-seconds", "3"]  # a dead worker's job is taken over within seconds


def test_the_openai_client_flow_on_postgresql_with_two_workers(server_factory, service_data,
                                                               postgres_url):
    def on_postgres(name: str = "home", extra: list[str] = ()):
        return server_factory(name, [*extra, "--database", postgres_url, "--workers", "2",
                                     *LEASE])

    e2e.test_fine_tune_and_chat_with_the_openai_client(on_postgres, service_data)


def test_sigkill_one_of_two_workers_mid_job_loses_and_repeats_nothing(server_factory,
                                                                      service_data,
                                                                      postgres_url):
    server = server_factory(extra=["--database", postgres_url, "--workers", "2", *LEASE]).start()
    client = server.client()
    with open(service_data / "train.jsonl", "rb") as f:
        upload = client.files.create(file=f, purpose="fine-tune")
    jobs = [client.fine_tuning.jobs.create(model=str(server.model), training_file=upload.id,
                                           hyperparameters={"n_epochs": 3, "batch_size": 1})
            for _ in range(2)]
    victim = jobs[0].id
    wait_for(lambda: client.fine_tuning.jobs.checkpoints.list(victim).data, every=0.05)
    assert client.fine_tuning.jobs.retrieve(jobs[1].id).status == "running"  # both at once
    holder = wait_for(lambda: _worker_running(server.home, victim))
    os.kill(holder["pid"], signal.SIGKILL)  # the server and the other worker live on

    for job in jobs:
        done = wait_for(lambda j=job: (r := client.fine_tuning.jobs.retrieve(j.id)).status
                        in FINAL and r, timeout=300)
        assert done.status == "succeeded", (done.error, server.log()[-2000:])
        events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))[::-1]
        steps = [e.data["step"] for e in events if e.type == "metrics"
                 and "train_loss" in e.data]
        assert steps == list(range(1, 3 * 40 + 1))  # in order, every step once
        checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
        assert sorted(c.step_number for c in checkpoints) == [40, 80, 120]
    log = (server.home / "worker.log").read_text()
    claims = [line.split()[2] for line in log.splitlines() if f"claimed {victim}" in line]
    assert len(set(claims)) == 2, log[-3000:]  # the second worker took it over
    assert "resumed from" in log


def _worker_running(home, job_id: str) -> dict | None:
    for path in (home / "workers").glob("*.json"):
        info = json.loads(path.read_text())
        if info["job"] == job_id:
            return info
    return None


def test_jobs_name_the_device_they_need(tmp_path, tiny_model_dir, postgres_url):
    store = open_store(postgres_url)
    settings = ServeSettings(tmp_path, None, 10_000, [str(tiny_model_dir)])
    with TestClient(create_app(settings, store)) as api:
        upload = api.post("/v1/files", files={"file": ("a.jsonl", b'{"messages": []}\n')},
                          data={"purpose": "fine-tune"}).json()
        body = {"model": str(tiny_model_dir), "training_file": upload["id"]}
        plain = api.post("/v1/fine_tuning/jobs", json=body).json()
        cuda = api.post("/v1/fine_tuning/jobs",
                        json={**body, "tunesmith": {"device": "cuda"}}).json()
        bad = api.post("/v1/fine_tuning/jobs",
                       json={**body, "tunesmith": {"device": "cpu", "gpus": 2}})
    assert bad.status_code == 400 and bad.json()["error"]["param"].startswith("tunesmith")
    assert (store.get_job(None, plain["id"]).device, store.get_job(None, plain["id"]).gpus) \
        == ("any", 0)
    assert (store.get_job(None, cuda["id"]).device, store.get_job(None, cuda["id"]).gpus) \
        == ("cuda", 1)
    store.close()
