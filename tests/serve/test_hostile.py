"""Careless and hostile requests get OpenAI-style 4xx errors that name the user's own objects
and never the server's paths (issue 9, classes 4, 5, 7, 8). TestClient, no server process."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tunesmith.errors import UsageError
from tunesmith.jobs.models import Job
from tunesmith.jobs.sqlite import SQLiteStore
from tunesmith.jobs.worker import Worker
from tunesmith.serve.app import create_app
from tunesmith.serve.deps import ServeSettings, read_keys
from tunesmith.serve.engine import Engine

A = {"Authorization": "Bearer k1"}


@pytest.fixture(scope="module")
def engine():
    return Engine(max_batch=8)


def _client(tmp_path, model_dir, engine, **options):
    settings = ServeSettings(tmp_path, {"k1": "alpha", "k2": "beta"}, 100_000, [str(model_dir)],
                             **options)
    store = SQLiteStore(tmp_path / "db")
    return TestClient(create_app(settings, store, engine)), store


@pytest.fixture
def api(tmp_path, tiny_model_dir, engine):
    client, store = _client(tmp_path, tiny_model_dir, engine)
    with client:
        client.store = store
        yield client


def _upload(api, data: bytes, name="train.jsonl"):
    r = api.post("/v1/files", headers=A, files={"file": (name, data)},
                 data={"purpose": "fine-tune"})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def _rows(n=12):
    return b"".join(json.dumps({"messages": [
        {"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "ab"[i % 2]}]})
        .encode() + b"\n" for i in range(n))


def test_a_file_a_job_still_needs_cannot_be_deleted(api, tiny_model_dir):
    file_id = _upload(api, _rows())
    job = api.post("/v1/fine_tuning/jobs", headers=A, json={
        "model": str(tiny_model_dir), "training_file": file_id}).json()
    r = api.delete(f"/v1/files/{file_id}", headers=A)
    assert r.status_code == 409 and r.json()["error"]["code"] == "file_in_use"
    assert job["id"] in r.json()["error"]["message"]
    assert api.get(f"/v1/files/{file_id}", headers=A).status_code == 200
    api.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel", headers=A)
    assert api.delete(f"/v1/files/{file_id}", headers=A).json()["deleted"]


def test_jobs_accept_only_offered_models_and_reveal_no_paths(api, tmp_path, tiny_model_dir):
    file_id = _upload(api, _rows())
    (tmp_path / "secret-folder").mkdir()
    messages = []
    for model in (str(tmp_path / "secret-folder"), str(tmp_path / "no-such-folder"),
                  "/etc/passwd", "../../etc", "Qwen/Qwen2.5-0.5B", "ft:nothing"):
        r = api.post("/v1/fine_tuning/jobs", headers=A,
                     json={"model": model, "training_file": file_id})
        assert r.status_code == 400 and r.json()["error"]["param"] == "model"
        messages.append(r.json()["error"]["message"].replace(model, "MODEL"))
    assert len(set(messages)) == 1  # the same answer whether or not the path exists
    assert "GET /v1/models" in messages[0]


@pytest.mark.parametrize("content,expected", [
    (b"", "is empty"), (b"\x00\x01\x02" * 100, "binary"), (b"\n\n", "is empty"),
    ("\n".join(['{"a": 1}'] * 3).encode("utf-16"), "UTF-16")])
def test_failed_jobs_name_the_file_not_the_server_path(api, tmp_path, tiny_model_dir, content,
                                                        expected):
    file_id = _upload(api, content, name="mine.jsonl")
    job_id = api.post("/v1/fine_tuning/jobs", headers=A, json={
        "model": str(tiny_model_dir), "training_file": file_id}).json()["id"]
    job = api.store.get_job(None, job_id)
    Worker(tmp_path, api.store).run(job)
    done = api.get(f"/v1/fine_tuning/jobs/{job_id}", headers=A).json()
    assert done["status"] == "failed" and done["error"]["param"] == "training_file"
    message = done["error"]["message"]
    assert expected in message and file_id in message and "mine.jsonl" in message
    assert str(tmp_path) not in message and "/files/" not in message
    events = api.get(f"/v1/fine_tuning/jobs/{job_id}/events", headers=A).json()["data"]
    assert all(str(tmp_path) not in e["message"] for e in events)
    details = api.get(f"/v1/files/{file_id}", headers=A).json()["status_details"] or ""
    assert str(tmp_path) not in details


def test_worker_scrubs_paths_from_any_failure(tmp_path):
    store = SQLiteStore(tmp_path / "db")
    job = Job("ftjob-x", "alpha", "m", "file-x", None, {}, 0, workdir="runs/x")
    store.add_job(job)
    failed = Worker(tmp_path, store)._fail(job, "server_error",
                                           f"OSError: cannot open {tmp_path}/runs/x/final/a.bin",
                                           None)
    assert failed.error["message"] == "OSError: cannot open <server path>"


def test_json_bodies_have_a_size_cap(tmp_path, tiny_model_dir, engine):
    client, _ = _client(tmp_path, tiny_model_dir, engine, max_body_bytes=2_000)
    with client:
        big = {"model": str(tiny_model_dir), "messages": [{"role": "user", "content": "x" * 5000}]}
        r = client.post("/v1/chat/completions", headers=A, json=big)
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

        def chunks():  # no Content-Length: the cap applies as the body arrives
            data = json.dumps(big).encode()
            for i in range(0, len(data), 500):
                yield data[i:i + 500]

        r = client.post("/v1/chat/completions", headers={**A, "Content-Type": "application/json"},
                        content=chunks())
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        ok = client.post("/v1/files", headers=A, files={"file": ("a.jsonl", _rows(40))},
                         data={"purpose": "fine-tune"})
        assert ok.status_code == 200  # uploads have their own, larger cap


def test_malformed_bodies_are_400(api, tiny_model_dir):
    for raw in (b"[" * 100_000, b'{"model": "m", "messages": [', b"\xff\xfe", b"null",
                b'{"model": "m", "messages": [{"role": "user", "content": "x"}], '
                b'"temperature": NaN}'):
        r = api.post("/v1/chat/completions", headers={**A, "Content-Type": "application/json"},
                     content=raw)
        assert r.status_code == 400, (raw[:20], r.status_code, r.text)
        assert "error" in r.json()


def test_docs_are_a_setting(tmp_path, tiny_model_dir, engine):
    for docs, status in ((True, 200), (False, 404)):
        client, _ = _client(tmp_path / str(docs), tiny_model_dir, engine, docs=docs)
        with client:
            assert client.get("/openapi.json").status_code == status
            assert client.get("/docs").status_code == status


def test_uploaded_file_names_are_cleaned(api):
    body = (b'--B\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
            b'--B\r\nContent-Disposition: form-data; name="file"; filename="..\\..\\x\x07\x00'
            b'evil.jsonl"\r\n\r\n' + _rows() + b"\r\n--B--\r\n")
    r = api.post("/v1/files", headers={**A, "Content-Type": "multipart/form-data; boundary=B"},
                 content=body)
    assert r.status_code == 200, r.text
    file_id = r.json()["id"]
    name = api.get(f"/v1/files/{file_id}", headers=A).json()["filename"]
    assert name == "xevil.jsonl"
    r = api.get(f"/v1/files/{file_id}/content", headers=A)
    assert r.status_code == 200 and r.content == _rows()


def test_keys_file_refuses_a_key_given_twice_and_odd_projects(tmp_path):
    path = tmp_path / "keys"
    path.write_text("k1 alpha\nk2 beta\nk1 beta\n")
    with pytest.raises(UsageError, match=r"keys:3: this key is already given on line 1 to "
                                         r"project 'alpha'"):
        read_keys(path)
    path.write_text("k1 alpha\nk2 al:pha\n")
    with pytest.raises(UsageError, match="keys:2: project 'al:pha' must be"):
        read_keys(path)
    path.write_text("k1 alpha\nk2 alpha\n")  # a project may have several keys
    assert read_keys(path) == {"k1": "alpha", "k2": "alpha"}
    path.write_bytes(b"\xff\xfe k1 alpha")
    with pytest.raises(UsageError, match="UTF-8"):
        read_keys(path)
