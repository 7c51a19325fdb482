"""`tunesmith worker --database URL --home PATH`: run fine-tuning jobs on this machine.

Start it on any machine that reaches the database and sees the service home (a shared file
system) at PATH: it claims jobs its device can run, one at a time, and keeps its claim alive
with a lease. If it dies, another worker resumes its job from the newest checkpoint once the
lease runs out. `tunesmith serve --workers N` starts its workers with this command too (with
`--parent`: they log to HOME/worker.log and die with the server).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from tunesmith.cli import args as types
from tunesmith.cli.fields import add_fields
from tunesmith.config import TrainConfig
from tunesmith.jobs.models import JobTraining
from tunesmith.jobs.store import DATABASE_ENV
from tunesmith.jobs.worker import die_with_parent, make_worker


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run fine-tuning jobs of a `tunesmith serve` service",
                       description="Claim and run the service's fine-tuning jobs on this "
                       "machine, one at a time. Needs the service's database and its home "
                       "(shared storage).")
    p.add_argument("--database", default=os.environ.get(DATABASE_ENV), metavar="URL",
                   help=f"postgresql://USER@HOST/DB or sqlite:///PATH (default: ${DATABASE_ENV}, "
                   "else SQLite in --home: workers on this machine only)")
    p.add_argument("--home", required=True, metavar="PATH",
                   help="the service home: the same folder `serve --home` uses")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="what this worker offers jobs (default: cuda if a GPU is visible)")
    p.add_argument("--gpus", type=types.int_range(0, 1024), default=None,
                   help="GPUs it offers (default: all visible; 0 with --device cpu)")
    # the server's children: log to HOME/worker.log, exit when the server (PID) is gone
    p.add_argument("--parent", type=types.int_range(1), default=None, help=argparse.SUPPRESS)
    add_job_options(p)
    p.set_defaults(run=run)


def add_job_options(p: argparse.ArgumentParser) -> None:
    """How workers hold and run jobs: `tunesmith worker` and `serve` (for its workers)."""
    p.add_argument("--lease-seconds", type=types.float_range(1, 86400), default=60.0,
                   help="a job whose worker died (stopped renewing its lease) is resumed by "
                   "another worker after this long (default: %(default)s)")
    add_fields(p.add_argument_group("memory levers applied to every job (as train's)"),
               TrainConfig, list(JobTraining.FLAGS))


def run(args: argparse.Namespace) -> int:
    home = Path(args.home).expanduser().resolve()
    if args.parent is not None:
        return run_child(args, home)
    home.mkdir(parents=True, exist_ok=True)
    worker = make_worker(home, args.database, device=args.device, gpus=args.gpus,
                         lease_s=args.lease_seconds, training=JobTraining.from_args(args))
    print(f"tunesmith worker {worker.id}: {worker.device}"
          + (f" x{worker.gpus}" if worker.gpus else "") + f", home {home}; Ctrl-C stops it "
          "(another worker resumes its job)", flush=True)
    # SIGTERM unwinds like Ctrl-C: the lease is released, so another worker resumes the job
    # at once rather than when the lease runs out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    worker.serve_forever()
    return 0


def run_child(args: argparse.Namespace, home: Path) -> int:
    """A worker `tunesmith serve` started: it dies with the server and logs to a file."""
    # SIGTERM (the server stopping) unwinds like an exception, so the job's lease is released
    # and the next worker resumes it at once instead of when the lease runs out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    die_with_parent()
    if os.getppid() != args.parent:
        return 0
    home.mkdir(parents=True, exist_ok=True)
    # Every worker of the home appends to one log; the pid tells them apart.
    logging.basicConfig(level=logging.INFO, force=True,
                        format="%(asctime)s %(process)d %(name)s %(message)s",
                        handlers=[logging.FileHandler(home / "worker.log")])
    worker = make_worker(home, args.database, device=args.device, gpus=args.gpus,
                         lease_s=args.lease_seconds, training=JobTraining.from_args(args))
    worker.serve_forever(parent=args.parent)
    return 0
