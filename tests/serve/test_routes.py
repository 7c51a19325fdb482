"""Routes through FastAPI's TestClient (no server process): shapes, paging, errors, and chat
parameters (n, stop, seed, max_tokens, streaming) on a tiny random model."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tunesmith.jobs.sqlite import SQLiteStore
from tunesmith.serve.app import create_app
from tunesmith.serve.deps import ServeSettings, read_keys
from tunesmith.serve.engine import Engine

AUTH = {"Authorization": "Bearer k1"}


@pytest.fixture(scope="module")
def engine():
    return Engine(max_batch=8)


@pytest.fixture
def api(tmp_path, tiny_model_dir, engine):
    settings = ServeSettings(tmp_path, {"k1": "alpha", "k2": "beta"}, 10_000,
                             [str(tiny_model_dir)])
    with TestClient(create_app(settings, SQLiteStore(tmp_path / "db"), engine)) as client:
        yield client


def _upload(api, name="a.jsonl", data=b'{"messages": []}\n', key="k1"):
    return api.post("/v1/files", headers={"Authorization": f"Bearer {key}"},
                    files={"file": (name, data)}, data={"purpose": "fine-tune"})


def test_files_upload_list_page_download_delete(api):
    ids = [_upload(api, f"f{i}.jsonl").json()["id"] for i in range(3)]
    first = api.get("/v1/files?limit=2", headers=AUTH).json()
    assert [f["id"] for f in first["data"]] == ids[:0:-1] and first["has_more"]
    rest = api.get(f"/v1/files?limit=2&after={first['last_id']}", headers=AUTH).json()
    assert [f["id"] for f in rest["data"]] == [ids[0]] and not rest["has_more"]
    assert api.get(f"/v1/files/{ids[0]}/content", headers=AUTH).content == b'{"messages": []}\n'
    assert "messages" in api.get(f"/v1/files/{ids[0]}", headers=AUTH).json()["status_details"]
    assert api.delete(f"/v1/files/{ids[0]}", headers=AUTH).json()["deleted"]
    r = api.get(f"/v1/files/{ids[0]}", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["code"] == "file_not_found"


def test_upload_errors(api):
    r = api.post("/v1/files", headers=AUTH, files={"file": ("a", b"x")}, data={"purpose": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "purpose"
    r = _upload(api, data=b"x" * 20_000)
    assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
    r = api.post("/v1/files", headers=AUTH, data={"purpose": "fine-tune"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "file"
    r = api.get("/v1/nothing", headers=AUTH)
    assert r.status_code == 404 and "error" in r.json()


def test_models_base_cannot_be_deleted(api, tiny_model_dir):
    base = str(tiny_model_dir)
    assert [m["id"] for m in api.get("/v1/models", headers=AUTH).json()["data"]] == [base]
    assert api.get(f"/v1/models/{base}", headers=AUTH).json()["owned_by"] == "tunesmith"
    assert api.delete(f"/v1/models/{base}", headers=AUTH).status_code == 403
    assert api.get("/v1/models/ft:none", headers=AUTH).status_code == 404


def _chat(api, model, **kw):
    body = {"model": model, "messages": [{"role": "user", "content": "hello there"}], **kw}
    return api.post("/v1/chat/completions", headers=AUTH, json=body)


def test_chat_parameters(api, tiny_model_dir):
    model = str(tiny_model_dir)
    greedy = _chat(api, model, max_tokens=12, temperature=0).json()
    text = greedy["choices"][0]["message"]["content"]
    assert greedy["object"] == "chat.completion" and greedy["id"].startswith("chatcmpl-")
    assert greedy["choices"][0]["finish_reason"] == "length"
    assert greedy["usage"]["completion_tokens"] == 12
    assert greedy["usage"]["total_tokens"] == greedy["usage"]["prompt_tokens"] + 12
    assert text == "".join(_chat(api, model, max_tokens=12, temperature=0).json()["choices"][0]
                           ["message"]["content"])  # greedy is deterministic
    sampled = _chat(api, model, max_tokens=12, seed=3).json()["choices"][0]["message"]["content"]
    stop = sampled.strip()[4:6]
    cut = _chat(api, model, max_tokens=12, seed=3, stop=["never", stop]).json()["choices"][0]
    assert cut["message"]["content"] == sampled[:sampled.index(stop)]
    assert cut["finish_reason"] == "stop"
    sampled = [_chat(api, model, max_tokens=8, temperature=1.0, seed=5, n=2).json()
               for _ in range(2)]
    assert sampled[0]["choices"] == sampled[1]["choices"]  # the seed fixes the samples
    assert len(sampled[0]["choices"]) == 2 and sampled[0]["usage"]["completion_tokens"] == 16
    lp = _chat(api, model, max_tokens=3, temperature=0, logprobs=True, top_logprobs=3).json()
    content = lp["choices"][0]["logprobs"]["content"]
    assert len(content) == 3 and all(len(c["top_logprobs"]) == 3 for c in content)
    assert content[0]["logprob"] == pytest.approx(content[0]["top_logprobs"][0]["logprob"])
    r = _chat(api, model, temperature=3)
    assert r.status_code == 400 and r.json()["error"]["param"] == "temperature"


def test_chat_streaming_sends_chunks_then_done(api, tiny_model_dir):
    model = str(tiny_model_dir)
    plain = _chat(api, model, max_tokens=6, temperature=0).json()["choices"][0]["message"]
    body = {"model": model, "messages": [{"role": "user", "content": "hello there"}],
            "max_tokens": 6, "temperature": 0, "stream": True}
    with api.stream("POST", "/v1/chat/completions", headers=AUTH, json=body) as r:
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == plain["content"]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


def test_keys_file(tmp_path):
    from tunesmith.errors import UsageError

    path = tmp_path / "keys"
    path.write_text("# team keys\nk1 alpha\n\nk2 beta  # second\n")
    assert read_keys(path) == {"k1": "alpha", "k2": "beta"}
    path.write_text("k1\n")
    with pytest.raises(UsageError, match="keys:1"):
        read_keys(path)
