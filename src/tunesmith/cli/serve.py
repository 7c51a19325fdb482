"""`tunesmith serve`: the OpenAI-compatible service, with its job worker as a child process."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

from tunesmith.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible fine-tuning and chat API",
                       description="Serve /v1/files, /v1/fine_tuning/jobs, /v1/models and "
                       "/v1/chat/completions; the official `openai` client works against it "
                       "(base_url=http://HOST:PORT/v1).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--home", default="tunesmith-home",
                   help="files, jobs, runs and models live here (default ./tunesmith-home)")
    p.add_argument("--keys", default=os.environ.get("TUNESMITH_API_KEYS_FILE"),
                   help="API keys file, one `KEY PROJECT` per line (default: "
                   "$TUNESMITH_API_KEYS_FILE; none: no authentication, one project)")
    p.add_argument("--model", action="append", dest="models", metavar="SPEC",
                   help="base model to offer (repeatable; default smollm2-135m-instruct)")
    p.add_argument("--max-upload-mb", type=float, default=512.0)
    p.add_argument("--max-batch", type=int, default=16, help="chat requests run together")
    p.add_argument("--no-worker", action="store_true",
                   help="do not start the job worker (run `python -m tunesmith.jobs.worker`)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from tunesmith.jobs.store import open_store
    from tunesmith.modeling import DEFAULT_MODEL
    from tunesmith.serve.app import create_app
    from tunesmith.serve.deps import ServeSettings, read_keys
    from tunesmith.serve.engine import Engine

    home = Path(args.home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    keys = read_keys(args.keys) if args.keys else None
    if args.max_upload_mb <= 0:
        raise UsageError("--max-upload-mb must be positive.")
    settings = ServeSettings(home, keys, int(args.max_upload_mb * 1024 * 1024),
                             args.models or [DEFAULT_MODEL])
    store = open_store(str(home / "tunesmith.db"))
    app = create_app(settings, store, Engine(max_batch=args.max_batch))
    log = logging.getLogger("tunesmith.serve")
    if keys is None:
        log.warning("no --keys file: every request is accepted, as project 'default'")
    worker = None
    if not args.no_worker:
        worker = subprocess.Popen([sys.executable, "-m", "tunesmith.jobs.worker", "--home",
                                   str(home), "--parent", str(os.getpid())])
    print(f"tunesmith serve: http://{args.host}:{args.port}/v1  (home {home})", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
    return 0
