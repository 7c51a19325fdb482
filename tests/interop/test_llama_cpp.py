"""Interoperability with a server nobody here wrote: llama.cpp's OpenAI-compatible server (from
`llama-cpp-python[server]`, compiled from its PyPI sdist by `make test-interop`) serving the GGUF
that `tunesmith export` writes. This proves the export loads in llama.cpp itself, and that
`eval --model openai:NAME` works against a third-party endpoint.

Marked `interop`: `make test-interop` builds the wheel once (cached in .cache/wheels), installs
it and runs these tests; `make test` does not.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import shared
from tunesmith.cli import main

pytestmark = pytest.mark.interop
pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed "
                    "(make test-interop builds and installs it)")
N = 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The embedded model written as a GGUF (f16) by `tunesmith export`."""
    path = tmp_path_factory.mktemp("gguf") / "smollm2-f16.gguf"
    assert main(["export", "smollm2-135m-instruct", "--format", "gguf", "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def llama_server(exported, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-log") / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(exported), "--host",
         "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--model_alias", "smollm2-export",
         "--n_threads", "2"], stdout=open(log, "w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        raise RuntimeError(f"llama.cpp server did not start: {log.read_text()[-3000:]}")
    yield base
    proc.terminate()
    proc.wait(timeout=30)


def _eval(capsys, *argv) -> dict:
    assert main(["eval", "--json", "--max-examples", str(N), *map(str, argv)]) == 0
    return json.loads(capsys.readouterr().out)


def test_exported_gguf_in_llama_cpp_answers_like_the_model_in_process(
        capsys, llama_server, tmp_path, monkeypatch):
    data = shared("sst2", "chat")
    remote = _eval(capsys, "--data", data, "--model", "openai:smollm2-export", "--mode",
                   "generate", "--base-url", llama_server, "--no-cache")
    local = _eval(capsys, "--data", data, "--mode", "generate")
    agree = sum(a == b for a, b in zip(remote["predictions"], local["predictions"]))
    # llama.cpp runs the f16 weights with its own kernels; transformers here runs bf16
    assert agree >= 0.85 * N, (agree, remote["predictions"], local["predictions"])
    assert remote["prompt_tokens"] == local["prompt_tokens"]  # same tokenizer and template
    scored = _eval(capsys, "--data", data, "--model", "openai:smollm2-export", "--base-url",
                   llama_server, "--no-cache")
    assert scored["mode"] == "score" and scored["metrics"]["accuracy"] > 0.5
