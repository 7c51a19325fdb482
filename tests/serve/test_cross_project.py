"""Another project's models, events and checkpoints are 404 everywhere, and its files and models
cannot be named in a job (issue: cross-project access was guarded in code, not tested)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tunesmith.jobs.models import ModelRecord
from tunesmith.jobs.sqlite import SQLiteStore
from tunesmith.serve.app import create_app
from tunesmith.serve.deps import ServeSettings
from tunesmith.serve.engine import Engine

ALPHA, BETA = {"Authorization": "Bearer k1"}, {"Authorization": "Bearer k2"}
TRAIN = b"".join(b'{"messages": [{"role": "user", "content": "q%d"}, {"role": "assistant", '
                 b'"content": "a"}]}\n' % i for i in range(12))


@pytest.fixture
def api(tmp_path, tiny_model_dir):
    settings = ServeSettings(tmp_path, {"k1": "alpha", "k2": "beta"}, 10_000,
                             [str(tiny_model_dir)])
    store = SQLiteStore(tmp_path / "db")
    with TestClient(create_app(settings, store, Engine(max_batch=2))) as client:
        yield client, store, str(tiny_model_dir)


def test_another_projects_models_events_and_checkpoints_are_404(api):
    client, store, base = api
    upload = client.post("/v1/files", headers=ALPHA, files={"file": ("t.jsonl", TRAIN)},
                         data={"purpose": "fine-tune"}).json()
    job = client.post("/v1/fine_tuning/jobs", headers=ALPHA,
                      json={"model": base, "training_file": upload["id"]}).json()
    ft = f"ft:{base}:alpha:s:abc123"
    store.add_model(ModelRecord(ft, "alpha", "fine-tuned", "runs/x/final", job_id=job["id"]))
    store.add_event(job["id"], "test:1", "alpha's private event")
    assert client.get(f"/v1/models/{ft}", headers=ALPHA).status_code == 200
    for method, path in (("GET", f"/v1/models/{ft}"), ("DELETE", f"/v1/models/{ft}"),
                         ("GET", f"/v1/fine_tuning/jobs/{job['id']}"),
                         ("GET", f"/v1/fine_tuning/jobs/{job['id']}/events"),
                         ("GET", f"/v1/fine_tuning/jobs/{job['id']}/checkpoints"),
                         ("POST", f"/v1/fine_tuning/jobs/{job['id']}/cancel"),
                         ("POST", f"/v1/fine_tuning/jobs/{job['id']}/pause"),
                         ("GET", f"/v1/files/{upload['id']}/content")):
        r = client.request(method, path, headers=BETA)
        assert r.status_code == 404, (method, path, r.text)
        assert "private event" not in r.text and set(r.json()["error"]) >= {"message", "code"}
    assert ft not in {m["id"] for m in client.get("/v1/models", headers=BETA).json()["data"]}
    chat = client.post("/v1/chat/completions", headers=BETA, json={
        "model": ft, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    assert chat.status_code == 404 and chat.json()["error"]["param"] == "model"
    # nor can beta train on alpha's file (as validation file) or continue alpha's model
    own = client.post("/v1/files", headers=BETA, files={"file": ("t.jsonl", TRAIN)},
                      data={"purpose": "fine-tune"}).json()
    r = client.post("/v1/fine_tuning/jobs", headers=BETA, json={
        "model": base, "training_file": own["id"], "validation_file": upload["id"]})
    assert r.status_code in (400, 404) and r.json()["error"]["param"] == "validation_file"
    r = client.post("/v1/fine_tuning/jobs", headers=BETA, json={
        "model": ft, "training_file": own["id"]})
    assert r.status_code in (400, 404) and r.json()["error"]["param"] == "model"
    assert client.get(f"/v1/models/{ft}", headers=ALPHA).status_code == 200  # untouched
