"""The worker processes `tunesmith serve --workers N` keeps running on its machine.

Each worker is a child process (`python -m tunesmith worker --parent PID`). A child that dies
(killed, out of memory, a crash in a CUDA library) is started again after a pause that doubles
while children keep dying young (1 s up to 60 s); its job is resumed by whichever worker claims it
once the dead one's lease runs out. On a machine with GPUs the visible ones are split between
the workers: N workers over G >= N GPUs get G // N each (`CUDA_VISIBLE_DEVICES`); with fewer
GPUs than workers, workers share them round-robin (and share their memory).
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

YOUNG_S = 30.0
"""A child that dies sooner than this after its start makes the next restart wait longer."""
MAX_PAUSE_S = 60.0


def split_gpus(workers: int, visible: list[str]) -> list[list[str]]:
    """The GPUs each of `workers` workers sees, from the `visible` ones (ids or indices).

    Example:
        >>> split_gpus(2, ["0", "1", "2", "3", "4"])
        [['0', '1'], ['2', '3']]
        >>> split_gpus(3, ["0", "1"])
        [['0'], ['1'], ['0']]
    """
    if not visible:
        return [[] for _ in range(workers)]
    if len(visible) >= workers:
        each = len(visible) // workers
        return [visible[i * each:(i + 1) * each] for i in range(workers)]
    return [[visible[i % len(visible)]] for i in range(workers)]


def visible_gpus() -> list[str]:
    """The GPUs this process may use: $CUDA_VISIBLE_DEVICES, else every device CUDA sees."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


@dataclass
class _Child:
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen | None = None
    started: float = 0.0
    pause: float = 0.5
    restart_at: float = 0.0
    restarts: int = 0


class WorkerPool:
    """Keeps one child process per command alive until `stop()`.

    Args:
        commands: (argv, extra environment) of each child.
        poll_s: how often the children are checked.
        spawn: starts a child (tests replace it); `subprocess.Popen` by default.
    """

    def __init__(self, commands: list[tuple[list[str], dict[str, str]]], *,
                 env: dict[str, str] | None = None, poll_s: float = 1.0,
                 spawn: Callable[..., subprocess.Popen] = subprocess.Popen) -> None:
        base = dict(env if env is not None else os.environ)
        self.children = [_Child(argv, {**base, **extra}) for argv, extra in commands]
        self.poll_s, self._spawn = poll_s, spawn
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-pool", daemon=True)

    def start(self) -> WorkerPool:
        for child in self.children:
            self._start(child)
        self._thread.start()
        return self

    def pids(self) -> list[int | None]:
        return [c.process.pid if c.process else None for c in self.children]

    def stop(self, timeout: float = 30.0) -> None:
        """Terminate every child (SIGTERM: a worker releases its job's lease) and wait."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for child in self.children:
            if child.process and child.process.poll() is None:
                child.process.terminate()
        for child in self.children:
            if child.process:
                try:
                    child.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    child.process.kill()
                    child.process.wait()

    def _start(self, child: _Child) -> None:
        child.process = self._spawn(child.argv, env=child.env)
        child.started = time.monotonic()

    def _watch(self) -> None:
        while not self._stopping.wait(self.poll_s):
            now = time.monotonic()
            for child in self.children:
                code = child.process.poll() if child.process else None
                if child.process is not None and code is not None:
                    lived = now - child.started
                    child.pause = (min(child.pause * 2, MAX_PAUSE_S) if lived < YOUNG_S
                                   else 1.0)
                    child.restart_at = now + child.pause
                    log.warning("worker pid %d exited with %s after %.0f s; restarting it in "
                                "%.0f s", child.process.pid, code, lived, child.pause)
                    child.process = None
                if child.process is None and now >= child.restart_at \
                        and not self._stopping.is_set():
                    self._start(child)
                    child.restarts += 1
