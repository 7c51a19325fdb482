"""Jobs survive a worker's death: 2 workers on PostgreSQL, 4 fine-tuning jobs, one worker
SIGKILLed mid-job, against the same 4 jobs with no kill, in one run.

A throw-away PostgreSQL (tests/jobs/postgres.py) and a live `tunesmith serve --workers 2
--database postgresql://... --lease-seconds L`, driven by the `openai` client; the jobs train a
tiny random Llama (the figure is about the service, not the model): 40 examples, 4 epochs,
batch 1 (160 steps, a checkpoint every 40); each worker uses one thread. Printed: the wall time
of each run, the time lost to the kill (the lease running out, the steps since the last
checkpoint done again, and the rest on one worker), and per job whether every step's metrics
event is there exactly once, in order.

    python bench/worker_failover.py [--lease-seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.jobs.postgres import Postgres, unavailable  # noqa: E402
from tests.serve.conftest import Server  # noqa: E402

JOBS, EPOCHS, ROWS = 4, 4, 40


def data(folder: Path) -> Path:
    labels = {"billing": ["my bill doubled", "charged twice", "refund my payment"],
              "outage": ["power is out", "the grid is down", "lights went off"],
              "app": ["the app crashes", "cannot log in", "blank screen"]}
    rows = [{"messages": [{"role": "user", "content": f"{text} ({k})"},
                          {"role": "assistant", "content": label}]}
            for k in range(5) for label, texts in labels.items() for text in texts][:ROWS]
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def tiny_model(folder: Path) -> Path:
    from tunesmith.modeling import build_tiny_model, load_tokenizer

    tok = load_tokenizer(None)
    build_tiny_model(len(tok), seed=0).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def run(name: str, root: Path, model: Path, train: Path, url: str, lease: int,
        kill: bool) -> dict:
    server = Server(root / name, model, ["--database", url, "--workers", "2",
                                         "--lease-seconds", str(lease)]).start()
    try:
        client = server.client()
        with train.open("rb") as f:
            upload = client.files.create(file=f, purpose="fine-tune")
        t0 = time.perf_counter()
        jobs = [client.fine_tuning.jobs.create(
            model=str(model), training_file=upload.id, seed=k,
            hyperparameters={"n_epochs": EPOCHS, "batch_size": 1}).id for k in range(JOBS)]
        killed = None
        if kill:
            while killed is None:  # the first worker holding a job that has a checkpoint
                for path in (server.home / "workers").glob("*.json"):
                    info = json.loads(path.read_text())
                    if info.get("job") and client.fine_tuning.jobs.checkpoints.list(
                            info["job"]).data:
                        os.kill(info["pid"], signal.SIGKILL)
                        killed = (info["job"], time.perf_counter() - t0)
                        break
                time.sleep(0.05)
        while True:
            states = [client.fine_tuning.jobs.retrieve(j).status for j in jobs]
            if all(s in ("succeeded", "failed", "cancelled") for s in states):
                break
            time.sleep(0.2)
        seconds = time.perf_counter() - t0
        complete = []
        for j in jobs:
            events = list(client.fine_tuning.jobs.list_events(j, limit=100))  # all pages
            steps = [e.data["step"] for e in events[::-1]
                     if e.type == "metrics" and "train_loss" in (e.data or {})]
            complete.append(steps == list(range(1, EPOCHS * ROWS + 1)))
        return {"seconds": seconds, "states": states, "complete": complete, "killed": killed}
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lease-seconds", type=int, default=10)
    args = ap.parse_args()
    # two workers on this 2-core machine: one thread each, else they spin-wait on each other
    # (the no-kill run would be the slow one: its two workers contend to the end)
    os.environ["OMP_NUM_THREADS"] = "1"
    why = unavailable()
    if why:
        sys.exit(f"cannot run: {why}")
    pg = Postgres().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            model = tiny_model(root / "model")
            train = data(root)
            print(f"{JOBS} jobs x {EPOCHS * ROWS} steps (tiny random Llama), 2 workers, "
                  f"PostgreSQL, lease {args.lease_seconds} s, {os.cpu_count()} CPUs")
            plain = run("plain", root, model, train, pg.new_database(), args.lease_seconds, False)
            killed = run("killed", root, model, train, pg.new_database(), args.lease_seconds,
                         True)
    finally:
        pg.stop()
    for name, r in (("no kill", plain), ("one worker SIGKILLed", killed)):
        extra = f", killed at {r['killed'][1]:.1f} s" if r["killed"] else ""
        print(f"{name:<22} {r['seconds']:6.1f} s  {r['states'].count('succeeded')}/{JOBS} "
              f"succeeded  every step once, in order: {sum(r['complete'])}/{JOBS}{extra}")
    print(f"time_lost_s={killed['seconds'] - plain['seconds']:.1f}")


if __name__ == "__main__":
    main()
