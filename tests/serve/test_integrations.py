"""OpenAI's `integrations` on fine-tuning jobs: stored and returned as sent, checked like OpenAI,
and a `wandb` one makes the worker log the run to W&B (offline here: no WANDB_API_KEY)."""

from __future__ import annotations

import argparse
import importlib.util
import json

import pytest
import yaml
from fastapi.testclient import TestClient

from tunesmith.jobs.models import JobTraining
from tunesmith.jobs.sqlite import SQLiteStore
from tunesmith.jobs.worker import Worker
from tunesmith.serve.app import create_app
from tunesmith.serve.deps import ServeSettings
from tunesmith.serve.engine import Engine

A = {"Authorization": "Bearer k1"}
WANDB = {"type": "wandb", "wandb": {"project": "my-proj", "entity": None, "name": None,
                                    "tags": ["t1", "t2"]}}


@pytest.fixture
def api(tmp_path, tiny_model_dir):
    settings = ServeSettings(tmp_path, {"k1": "alpha"}, 100_000, [str(tiny_model_dir)])
    store = SQLiteStore(tmp_path / "db")
    with TestClient(create_app(settings, store, Engine(max_batch=1))) as client:
        client.store = store
        yield client


def _create(api, model, **body):
    rows = b"".join(json.dumps({"messages": [
        {"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "ab"[i % 2]}]})
        .encode() + b"\n" for i in range(12))
    file_id = api.post("/v1/files", headers=A, files={"file": ("t.jsonl", rows)},
                       data={"purpose": "fine-tune"}).json()["id"]
    return api.post("/v1/fine_tuning/jobs", headers=A,
                    json={"model": str(model), "training_file": file_id, **body})


def test_integrations_are_stored_and_returned(api, tiny_model_dir):
    job = _create(api, tiny_model_dir, integrations=[WANDB]).json()
    assert job["integrations"] == [WANDB]
    assert api.get(f"/v1/fine_tuning/jobs/{job['id']}", headers=A).json()["integrations"] == [WANDB]
    assert _create(api, tiny_model_dir).json()["integrations"] == []


@pytest.mark.parametrize("integration", [
    {"type": "neptune", "wandb": {"project": "p"}},
    {"type": "wandb", "wandb": {"name": "no project"}},
    {"type": "wandb", "wandb": {"project": "p", "tags": ["x" * 65]}}])
def test_bad_integrations_are_400s_naming_the_parameter(api, tiny_model_dir, integration):
    r = _create(api, tiny_model_dir, integrations=[integration])
    assert r.status_code == 400 and r.json()["error"]["param"].startswith("integrations")


def test_worker_logs_a_wandb_job_to_an_offline_run(api, tiny_model_dir, tmp_path, monkeypatch):
    if importlib.util.find_spec("wandb") is None:
        pytest.skip("wandb is not installed (pip install wandb, or tunesmith[tracking])")
    for var in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    job_id = _create(api, tiny_model_dir, integrations=[WANDB], method={
        "type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1,
                                                                 "batch_size": 6}}}).json()["id"]
    Worker(tmp_path, api.store).run(api.store.get_job(None, job_id))
    job = api.store.get_job(None, job_id)
    assert job.status == "succeeded", job.error
    run = tmp_path / job.workdir
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["report_to"], saved["wandb_project"], saved["wandb_name"],
            saved["wandb_tags"]) == (["wandb"], "my-proj", job_id, ["t1", "t2"])
    assert len(list((run / "wandb").glob("offline-run-*/run-*.wandb"))) == 1


def test_a_worker_applies_its_memory_levers_to_its_jobs(api, tiny_model_dir, tmp_path):
    pytest.importorskip("bitsandbytes")
    job_id = _create(api, tiny_model_dir, method={"type": "supervised", "supervised": {
        "hyperparameters": {"n_epochs": 1, "batch_size": 6}}}).json()["id"]
    levers = JobTraining(gradient_checkpointing=True, quantize="4bit", optimizer="adamw-8bit")
    Worker(tmp_path, api.store, training=levers).run(api.store.get_job(None, job_id))
    job = api.store.get_job(None, job_id)
    assert job.status == "succeeded", job.error
    saved = yaml.safe_load((tmp_path / job.workdir / "config.yaml").read_text())
    assert (saved["gradient_checkpointing"], saved["quantize"], saved["optimizer"]) == (
        True, "4bit", "adamw-8bit")
    # what `serve --workers N` passes its worker children
    from tunesmith.cli.worker import add_job_options

    parser = argparse.ArgumentParser()
    add_job_options(parser)
    assert JobTraining.from_args(parser.parse_args(levers.argv())) == levers
