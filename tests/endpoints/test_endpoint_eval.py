"""`tunesmith eval --model openai:NAME` against a real OpenAI-compatible server: a live
`tunesmith serve` (tiny model) on a free port, as a user would run it. No mocks."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.conftest import ASSETS
from tests.serve.conftest import KEYS, Server, free_port
from tunesmith.cli import main

SECRET = "key-alpha"  # the server's key for project alpha (tests/serve/conftest.py)


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    from tunesmith.data.prepare import prepare

    path = tmp_path_factory.mktemp("endpoint-task")
    prepare(ASSETS / "classification_tiny.jsonl", "classification", path, val=0.2, test=0.4)
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh tunesmith home (so the endpoint cache starts empty) and the key in the env."""
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "tunesmith-home"))
    monkeypatch.setenv("TEST_ENDPOINT_KEY", SECRET)
    return tmp_path / "tunesmith-home"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    """One live server for the module's tests (each has its own client-side home and cache;
    the one that kills its server starts its own)."""
    s = Server(tmp_path_factory.mktemp("svc"), tiny_model_dir).start()
    yield s
    s.stop()


def _eval(capsys, model, data, *extra):
    code = main(["eval", "--model", model, "--data", str(data), "--json", *map(str, extra)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and SECRET not in out + err
    return code, (json.loads(out) if out.strip() else None), err


def test_endpoint_generation_matches_the_local_model(capsys, home, server, task_dir,
                                                     tiny_model_dir):
    spec = f"openai:{tiny_model_dir}"
    code, remote, _ = _eval(capsys, spec, task_dir, "--mode", "generate", "--base-url",
                            server.url, "--api-key-env", "TEST_ENDPOINT_KEY")
    assert code == 0, remote
    code, local, _ = _eval(capsys, str(tiny_model_dir), task_dir, "--mode", "generate")
    assert code == 0
    differ = sum(a != b for a, b in zip(remote["predictions"], local["predictions"]))
    assert remote["n"] == local["n"] and differ <= max(1, remote["n"] // 30)
    assert remote["prompt_tokens"] == local["prompt_tokens"]  # usage: the same prompts
    assert remote["requests"]["asked"] == remote["n"] and remote["requests"]["from_cache"] == 0
    cached = [json.loads(p.read_text()) for p in (home / "cache" / "endpoints").rglob("*.json")]
    assert len(cached) == remote["n"]
    assert all(SECRET not in json.dumps(c) for c in cached)  # the key is never stored
    code, again, _ = _eval(capsys, spec, task_dir, "--mode", "generate", "--base-url",
                           server.url, "--api-key-env", "TEST_ENDPOINT_KEY")
    assert again["requests"] == {**remote["requests"], "asked": 0, "from_cache": remote["n"]}
    assert again["predictions"] == remote["predictions"]


def test_endpoint_scoring_runs_on_first_token_logprobs(capsys, home, server, task_dir,
                                                       tiny_model_dir):
    code, doc, _ = _eval(capsys, f"openai:{tiny_model_dir}", task_dir, "--base-url",
                         server.url, "--api-key-env", "TEST_ENDPOINT_KEY", "--calibrate")
    assert code == 0 and doc["mode"] == "score"
    assert all(p is None or p in ("negative", "positive") for p in doc["predictions"])
    # one request per example, one token each; calibration adds three content-free requests
    assert doc["requests"]["asked"] >= doc["n"] + 3


def test_wrong_url_key_and_model_are_clear_errors(capsys, home, server, task_dir,
                                                  tiny_model_dir, monkeypatch):
    nowhere = f"http://127.0.0.1:{free_port()}/v1"
    code, doc, err = _eval(capsys, f"openai:{tiny_model_dir}", task_dir, "--base-url", nowhere,
                           "--api-key-env", "TEST_ENDPOINT_KEY", "--max-retries", "1")
    assert code == 2 and "cannot reach" in doc["error"]["message"] and nowhere in err
    monkeypatch.setenv("TEST_ENDPOINT_KEY", "sk-wrong-" + "x" * 20)
    code, doc, err = _eval(capsys, f"openai:{tiny_model_dir}", task_dir, "--base-url",
                           server.url, "--api-key-env", "TEST_ENDPOINT_KEY")
    assert code == 2 and "refused the API key (401)" in err and "x" * 20 not in err
    monkeypatch.setenv("TEST_ENDPOINT_KEY", SECRET)
    code, doc, err = _eval(capsys, "openai:no-such-model", task_dir, "--base-url", server.url,
                           "--api-key-env", "TEST_ENDPOINT_KEY")
    assert code == 2 and "model 'no-such-model' not found (404)" in err
    code, doc, err = _eval(capsys, "openai:", task_dir, "--base-url", server.url)
    assert code == 2 and "needs a model name" in err


def test_a_server_dying_mid_eval_then_a_rerun_resumes_from_the_cache(
        capsys, home, tmp_path, task_dir, tiny_model_dir):
    from tunesmith.data.prepare import prepare

    big = tmp_path / "big-task"
    rows = "".join(json.dumps({"text": f"review number {i} " + "word " * (i % 7),
                               "label": "ab"[i % 2]}) + "\n" for i in range(80))
    (tmp_path / "big.jsonl").write_text(rows)
    prepare(tmp_path / "big.jsonl", "classification", big, val=0.0, test=0.5)
    server = Server(tmp_path / "svc", tiny_model_dir).start()
    port = server.port
    argv = ["--mode", "generate", "--base-url", server.url, "--api-key-env", "TEST_ENDPOINT_KEY",
            "--concurrency", "1", "--max-retries", "1"]
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(
        code=main(["eval", "--model", f"openai:{tiny_model_dir}", "--data", str(big), "--json",
                   *argv])))
    runner.start()
    cache = home / "cache" / "endpoints"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cache.rglob("*.json"))) < 10:
        time.sleep(0.05)
    server.kill()
    runner.join(120)
    out, err = capsys.readouterr()
    kept = len(list(cache.rglob("*.json")))
    assert outcome["code"] == 1 and "stopped answering" in err and "rerun to resume" in err
    assert 10 <= kept < 40
    server.start(port)  # the same address: the cache is keyed by it
    try:
        code, doc, _ = _eval(capsys, f"openai:{tiny_model_dir}", big, *argv)
    finally:
        server.stop()
    assert code == 0 and doc["n"] == 40
    assert doc["requests"]["from_cache"] == kept and doc["requests"]["asked"] == 40 - kept


def test_openai_itself_needs_a_key(capsys, home, task_dir, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    code, doc, err = _eval(capsys, "openai:gpt-4.1-mini", task_dir)
    assert code == 2 and "needs a key: set OPENAI_API_KEY" in err


assert "key-alpha" in KEYS  # the server's keys file gives SECRET to project alpha


def test_ner_and_chat_through_the_endpoint(capsys, home, server, tiny_model_dir, tmp_path):
    endpoint = ["--base-url", server.url, "--api-key-env", "TEST_ENDPOINT_KEY"]
    code, ner, _ = _eval(capsys, f"openai:{tiny_model_dir}", ASSETS / "ner_tiny.jsonl",
                         *endpoint)
    assert code == 0 and ner["task"] == "ner" and ner["mode"] == "generate"
    assert ner["invalid"] == ner["n"]  # a random model writes no JSON list: counted, not dropped
    assert {"precision", "recall", "f1", "per_type"} <= set(ner["metrics"])
    answers = ["Paris is the capital of France and its largest city.",
               "Water boils at one hundred degrees Celsius at sea level.",
               "Photosynthesis turns light, water and carbon dioxide into sugar."]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": a}]})
        + "\n" for i, a in enumerate(answers)))
    code, chat, _ = _eval(capsys, f"openai:{tiny_model_dir}", tmp_path / "chat.jsonl",
                          *endpoint, "--max-examples", "3")
    assert code == 0 and chat["task"] == "chat" and "loss" not in chat["metrics"]
    assert 0 <= chat["metrics"]["token_f1"] <= 1 and "no loss/perplexity" in chat["notes"][0]
