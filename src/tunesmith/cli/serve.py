"""`tunesmith serve`: the OpenAI-compatible service, with its job workers as child processes."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys
from pathlib import Path

from tunesmith.cli import args as types
from tunesmith.cli.worker import add_job_options
from tunesmith.errors import UsageError
from tunesmith.heads import head_of
from tunesmith.jobs.database import database_url, open_store
from tunesmith.jobs.models import JobTraining
from tunesmith.jobs.pool import WorkerPool, split_gpus, visible_gpus
from tunesmith.jobs.store import DATABASE_ENV
from tunesmith.modeling import DEFAULT_MODEL, resolve_model, run_final_dir
from tunesmith.outputs import check_parent


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible fine-tuning and chat API",
                       description="Serve /v1/files, /v1/fine_tuning/jobs, /v1/models and "
                       "/v1/chat/completions; the official `openai` client works against it "
                       "(base_url=http://HOST:PORT/v1).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=types.port, default=8000, help="1-65535 (default: %(default)s)")
    p.add_argument("--home", default="tunesmith-home",
                   help="files, jobs, runs and models live here (default ./tunesmith-home)")
    p.add_argument("--keys", default=os.environ.get("TUNESMITH_API_KEYS_FILE"),
                   help="API keys file, one `KEY PROJECT` per line (default: "
                   "$TUNESMITH_API_KEYS_FILE; none: no authentication, one project)")
    p.add_argument("--model", action="append", dest="models", metavar="SPEC",
                   help="base model to offer (repeatable; default smollm2-135m-instruct)")
    p.add_argument("--max-upload-mb", type=types.positive_float, default=512.0,
                   help="largest file upload (default: %(default)s)")
    p.add_argument("--max-body-mb", type=types.positive_float, default=8.0,
                   help="largest JSON request body, e.g. chat messages (default: %(default)s)")
    p.add_argument("--max-batch", type=types.int_range(1, 256), default=64,
                   help="chat rows decoded together per base model (default: %(default)s)")
    p.add_argument("--max-batch-tokens", type=types.positive_int, default=65536,
                   help="KV-cache tokens one running batch may hold (rows x longest prompt + "
                   "max_tokens); also caps one request (default: %(default)s)")
    p.add_argument("--max-queue", type=types.positive_int, default=256,
                   help="chat rows waiting to run; more get HTTP 429 (default: %(default)s)")
    p.add_argument("--max-loaded-adapters", type=types.positive_int, default=8,
                   help="LoRA adapters kept loaded; the least recently used idle one is "
                   "unloaded past this (default: %(default)s)")
    p.add_argument("--engine", choices=("continuous", "static", "vllm"), default="continuous",
                   help="continuous: requests join and leave the running batch at every step, "
                   "adapters mixed; static: the earlier engine, a batch of one model runs "
                   "until its longest answer ends; vllm: a vLLM server answers (started "
                   "here from `make setup-vllm`'s environment, or --vllm-url), the first --model "
                   "its base, fine-tuned adapters loaded at runtime (default: %(default)s)")
    p.add_argument("--vllm-url", metavar="URL",
                   help="--engine vllm: a vLLM OpenAI-compatible server already running (up to "
                   "its port; started with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING)")
    p.add_argument("--vllm-python", metavar="PATH",
                   help="--engine vllm: the Python of vLLM's environment (default: "
                   ".venv-vllm/bin/python, made by `make setup-vllm`)")
    p.add_argument("--max-loras", type=types.positive_int, default=4,
                   help="--engine vllm: adapters in one vLLM batch (default: %(default)s)")
    p.add_argument("--max-cpu-loras", type=types.positive_int, default=8,
                   help="--engine vllm: adapters kept loaded in vLLM; the least recently used "
                   "is unloaded past this (default: %(default)s)")
    p.add_argument("--default-max-tokens", type=types.positive_int, default=512,
                   help="answer tokens for a chat request that sets no max_tokens "
                   "(default: %(default)s)")
    p.add_argument("--request-timeout", type=types.positive_float, default=300.0,
                   metavar="SECONDS", help="a chat request still generating after this long "
                   "ends with finish_reason 'length' (default: %(default)s)")
    p.add_argument("--docs", action=argparse.BooleanOptionalAction, default=None,
                   help="serve /docs and /openapi.json without a key (default: on without "
                   "--keys, off with --keys)")
    p.add_argument("--database", default=os.environ.get(DATABASE_ENV), metavar="URL",
                   help="where jobs, files and models are recorded: postgresql://USER@HOST/DB "
                   "(workers on other machines: `tunesmith worker`) or sqlite:///PATH "
                   f"(default: ${DATABASE_ENV}, else SQLite in --home)")
    p.add_argument("--workers", type=types.int_range(0, 64), default=1,
                   help="job worker processes to start on this machine, each running one job "
                   "at a time; 0: API only (default: %(default)s)")
    add_job_options(p)
    p.add_argument("--no-worker", dest="workers", action="store_const", const=0,
                   help="same as --workers 0")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # The service needs the [serve] extra (FastAPI, uvicorn): imported only when it starts, so
    # the rest of the command line works without it.
    import uvicorn

    from tunesmith.serve.app import create_app
    from tunesmith.serve.deps import ServeSettings, read_keys
    from tunesmith.serve.engine import Engine
    from tunesmith.serve.vllm import start_vllm

    home = check_parent(Path(args.home).expanduser(), "--home").resolve()
    if home.exists() and not home.is_dir():
        raise UsageError(f"--home {args.home} is a file; give a folder.")
    keys = read_keys(args.keys) if args.keys else None
    models = args.models or [DEFAULT_MODEL]
    for spec in models:
        resolve_model(spec)  # a --model that does not exist stops us before we listen
        head = head_of(run_final_dir(spec))
        if head is not None:
            raise UsageError(f"--model {spec} was fine-tuned with a {head[0]} head: it answers "
                             "with labels, not chat messages, so serve does not offer it. Use "
                             "`tunesmith eval --model` on it, or load its final/ with transformers' "
                             "AutoPeftModelFor" + ("SequenceClassification" if head[0] == "classifier"
                                                  else "TokenClassification") + ".")
    listener = _listen(args.host, args.port)
    home.mkdir(parents=True, exist_ok=True)
    settings = ServeSettings(home, keys, int(args.max_upload_mb * 1024 * 1024), models,
                             default_max_tokens=args.default_max_tokens,
                             request_timeout_s=args.request_timeout,
                             max_body_bytes=int(args.max_body_mb * 1024 * 1024),
                             docs=args.docs if args.docs is not None else keys is None)
    database = database_url(args.database, home)
    store = open_store(database)
    vllm = None
    if args.engine == "vllm":
        vllm = start_vllm(models[0], home, url=args.vllm_url, python=args.vllm_python,
                          max_loras=args.max_loras, max_cpu_loras=args.max_cpu_loras)
    app = create_app(settings, store, Engine(
        max_batch=args.max_batch, continuous=args.engine == "continuous",
        max_adapters=args.max_loaded_adapters, max_batch_tokens=args.max_batch_tokens,
        max_queue=args.max_queue))
    app.state.vllm = vllm
    log = logging.getLogger("tunesmith.serve")
    if keys is None:
        log.warning("no --keys file: every request is accepted, as project 'default'")
    # The URL goes by environment, not argv: `ps` would show a password in it.
    env = {**os.environ, DATABASE_ENV: database}
    pool = WorkerPool(worker_commands(args, home), env=env).start()
    print(f"tunesmith serve: http://{args.host}:{args.port}/v1  (home {home})", flush=True)
    try:
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        server.run(sockets=[listener])
    finally:
        listener.close()
        pool.stop()
        if vllm is not None:
            vllm.server.stop()
    return 0


def worker_commands(args: argparse.Namespace, home: Path) -> list[tuple[list[str], dict]]:
    """(argv, environment) of each worker child: the job options, and its share of the GPUs."""
    shares = split_gpus(args.workers, visible_gpus() if args.workers else [])
    commands = []
    for gpus in shares:
        argv = [sys.executable, "-m", "tunesmith", "worker", "--home", str(home), "--parent",
                str(os.getpid()), "--lease-seconds", str(args.lease_seconds),
                *JobTraining.from_args(args).argv()]
        if gpus:
            argv += ["--device", "cuda", "--gpus", str(len(gpus))]
        commands.append((argv, {"CUDA_VISIBLE_DEVICES": ",".join(gpus)} if gpus else {}))
    return commands


def _listen(host: str, port: int) -> socket.socket:
    """Bind the port before anything is announced, so a taken port is a clear error.

    Raises:
        UsageError: the address cannot be bound (in use, not an address of this machine, no
            permission).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UsageError(f"--host {host}: not an address of this machine ({e.strerror}).") from e
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is already in use (another server?); "
                             "choose another --port.") from e
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror}.") from e
    return sock
