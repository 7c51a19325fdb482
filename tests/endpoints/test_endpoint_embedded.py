"""The embedded model served by `tunesmith serve` and evaluated through the endpoint agrees with
the same model evaluated in-process (slow: the real 135M model, SST-2 from ../shared/data)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import shared
from tests.serve.conftest import Server
from tunesmith.cli import main

pytestmark = pytest.mark.slow
N = 60


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("embedded-svc")
    server = Server(home / "svc", "smollm2-135m-instruct").start()
    yield server
    server.stop()


def _eval(capsys, *argv):
    assert main(["eval", "--json", "--max-examples", str(N), *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_generation_through_the_endpoint_matches_in_process(capsys, served, monkeypatch,
                                                            tmp_path):
    monkeypatch.setenv("EMBEDDED_KEY", "key-alpha")
    data = shared("sst2", "chat")
    endpoint = ["--model", "openai:smollm2-135m-instruct", "--base-url", served.url,
                "--api-key-env", "EMBEDDED_KEY", "--no-cache"]
    remote = _eval(capsys, "--data", str(data), "--mode", "generate", *endpoint)
    local = _eval(capsys, "--data", str(data), "--mode", "generate")
    differ = sum(a != b for a, b in zip(remote["predictions"], local["predictions"]))
    assert differ <= N // 30, differ  # bf16 batch shapes may flip a near tie

    scored = _eval(capsys, "--data", str(data), *endpoint)
    from tunesmith.data.splits import load_task_data
    from tunesmith.evaluation.backends import LocalBackend
    from tunesmith.modeling import load_for_inference
    from tunesmith.prompting.prompter import PromptConfig, Prompter

    td = load_task_data(data)
    model, tok = load_for_inference("smollm2-135m-instruct")
    backend = LocalBackend(model, tok)
    prompts = backend._render(Prompter(td.spec, td.train, PromptConfig()).conversations(
        td.test[:N]))
    first = [tok(label, add_special_tokens=False)["input_ids"][0] for label in td.spec.labels]
    assert len(set(first)) == len(first)  # the labels differ in their first token
    agree = compared = 0
    with torch.inference_mode():
        for i, prompt in enumerate(prompts):
            ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
            logp = model(input_ids=ids).logits[0, -1].float().log_softmax(-1)
            if scored["predictions"][i] is None:
                continue
            compared += 1
            agree += td.spec.labels[int(logp[first].argmax())] == scored["predictions"][i]
    assert compared >= N * 0.8 and agree >= compared - max(1, compared // 30), (agree, compared)
