"""serve's worker children: restarted when they die, GPUs split between them."""

import argparse
import os
import signal
import sys
import time

from tunesmith.cli.serve import worker_commands
from tunesmith.cli.worker import add_job_options
from tunesmith.jobs.pool import WorkerPool, split_gpus

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_split_gpus():
    assert split_gpus(2, ["0", "1", "2", "3", "4"]) == [["0", "1"], ["2", "3"]]
    assert split_gpus(4, ["0", "1", "2", "3"]) == [["0"], ["1"], ["2"], ["3"]]
    assert split_gpus(3, ["5", "7"]) == [["5"], ["7"], ["5"]]  # shared round-robin
    assert split_gpus(2, []) == [[], []]


def test_a_killed_worker_is_started_again_and_stop_ends_them_all():
    pool = WorkerPool([(SLEEPER, {}), (SLEEPER, {})], poll_s=0.05).start()
    try:
        first, second = pool.pids()
        os.kill(first, signal.SIGKILL)
        assert wait_for(lambda: pool.pids()[0] not in (None, first)), "not restarted"
        assert pool.pids()[1] == second and pool.children[0].restarts == 1
    finally:
        pool.stop(timeout=10)
    assert all(c.process.poll() is not None for c in pool.children)


def test_a_worker_that_keeps_dying_young_is_restarted_ever_more_slowly():
    dying = [sys.executable, "-c", "raise SystemExit(3)"]
    pool = WorkerPool([(dying, {})], poll_s=0.05).start()
    try:
        time.sleep(4.0)
        # pauses of 1, 2, 4 s: at most three restarts in 4 s (a loop would make dozens)
        assert 1 <= pool.children[0].restarts <= 3
        assert pool.children[0].pause >= 2.0
    finally:
        pool.stop(timeout=10)


def parsed(*argv):
    p = argparse.ArgumentParser()
    add_job_options(p)
    p.add_argument("--workers", type=int)
    return p.parse_args(list(argv))


def test_serve_gives_each_worker_its_share_of_the_gpus(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5")
    commands = worker_commands(parsed("--workers", "3", "--quantize", "4bit"), tmp_path)
    assert [env for _, env in commands] == [{"CUDA_VISIBLE_DEVICES": "0,1"},
                                            {"CUDA_VISIBLE_DEVICES": "2,3"},
                                            {"CUDA_VISIBLE_DEVICES": "4,5"}]
    for argv, _ in commands:
        assert argv[argv.index("--gpus") + 1] == "2" and argv[argv.index("--device") + 1] == "cuda"
        assert argv[argv.index("--quantize") + 1] == "4bit"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU: the workers find their device
    commands = worker_commands(parsed("--workers", "2"), tmp_path)
    assert all(env == {} and "--device" not in argv for argv, env in commands)
