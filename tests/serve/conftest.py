"""A live `tunesmith serve` on 127.0.0.1 (random port), driven over HTTP like a user would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

KEYS = {"key-alpha": "alpha", "key-beta": "beta"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """Starts, kills (SIGKILL) and restarts a server over the same home."""

    def __init__(self, home: Path, model: Path, extra: list[str] = ()) -> None:
        self.home, self.model, self.extra = home, model, list(extra)
        self.keys = home.parent / f"{home.name}-keys.txt"
        self.keys.write_text("".join(f"{k} {p}\n" for k, p in KEYS.items()))
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, port: int | None = None) -> Server:
        self.port = port or free_port()
        log = open(self.home.parent / f"{self.home.name}-server.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tunesmith", "serve", "--port", str(self.port), "--home",
             str(self.home), "--keys", str(self.keys), "--model", str(self.model),
             *self.extra], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + getattr(self, "start_timeout", 90)
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not start: {self.log()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the server's whole process group: server and worker die mid-work."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        path = self.home.parent / f"{self.home.name}-server.log"
        return path.read_text() if path.is_file() else ""

    def client(self, key: str = "key-alpha"):
        from openai import OpenAI

        return OpenAI(base_url=self.url, api_key=key, max_retries=0, timeout=120)


@pytest.fixture
def server_factory(tmp_path, tiny_model_dir):
    started: list[Server] = []

    def make(name: str = "home", extra: list[str] = ()) -> Server:
        server = Server(tmp_path / name, tiny_model_dir, extra)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def wait_for(predicate, timeout: float = 180, every: float = 0.3):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


@pytest.fixture(scope="session")
def service_data(tmp_path_factory):
    """A training file of 40 and a validation file of 8 support-routing examples (OpenAI
    requires at least 10 training examples)."""
    import json

    path = tmp_path_factory.mktemp("service-data")
    system = "Route the message to one of: billing, outage, app."
    texts = {"billing": ["my bill doubled", "charged twice", "refund my payment",
                         "invoice is wrong"],
             "outage": ["power is out", "no electricity since noon", "the grid is down",
                        "lights went off"],
             "app": ["the app crashes", "cannot log in to the app", "app shows blank screen",
                     "update broke the app"]}
    rows = [{"messages": [{"role": "system", "content": system},
                          {"role": "user", "content": f"{text} ({k})"},
                          {"role": "assistant", "content": label}]}
            for k in range(4) for label, items in texts.items() for text in items]
    (path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:40]))
    (path / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[40:]))
    return path
