"""Endpoint evaluation speed: `eval --model openai:NAME` against a live `tunesmith serve` with the
embedded model, with 8 requests in flight against 1, in one run (no response cache).

    python bench/endpoint_eval.py [--examples 64] [--data ../shared/data/sst2/chat]

Prints examples/s per concurrency and mode, the accuracy each reached (the same requests, so it
must not change with concurrency beyond bf16 batch-shape noise), and the ratio. Then, for the
same examples, how often the endpoint's first-token scoring (`top_logprobs`) picks the label the
in-process model's whole-label scoring (end-of-turn included) picks.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=64)
    ap.add_argument("--data", default=str(SHARED / "sst2" / "chat"))
    ap.add_argument("--model", default="smollm2-135m-instruct")
    args = ap.parse_args()

    from tunesmith.data.splits import load_task_data
    from tunesmith.endpoints import EndpointClient, resolve_endpoint
    from tunesmith.evaluation.backends import EndpointBackend
    from tunesmith.evaluation.runner import evaluate

    td = load_task_data(args.data)
    test = td.test[: args.examples]
    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        server = subprocess.Popen(
            [sys.executable, "-m", "tunesmith", "serve", "--port", str(port), "--home", home,
             "--model", args.model, "--no-worker", "--max-batch", "16"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}/v1"
            _wait(base)
            endpoint = resolve_endpoint(f"openai:{args.model}", base, "NO_KEY_NEEDED")
            warm = EndpointBackend(EndpointClient(endpoint, concurrency=8, cache=None))
            evaluate(warm, test[:16], td.spec, mode="generate")  # loads the model in the server
            print(f"{len(test)} {td.spec.task} examples from {args.data}, {args.model} served by "
                  "tunesmith serve (max batch 16) on this machine, no response cache")
            print(f"{'mode':9} {'concurrency':>11} {'examples/s':>10} {'accuracy':>8}")
            rates, scored = {}, None
            for mode in ("generate", "score"):
                for concurrency in (1, 8):
                    client = EndpointClient(endpoint, concurrency=concurrency, cache=None)
                    backend = EndpointBackend(client)
                    start = time.perf_counter()
                    result = evaluate(backend, test, td.spec, mode=mode)
                    rate = len(test) / (time.perf_counter() - start)
                    rates[mode, concurrency] = rate
                    scored = result if mode == "score" else scored
                    print(f"{mode:9} {concurrency:11} {rate:10.2f} "
                          f"{result.metrics.get('accuracy', result.score):8.3f}", flush=True)
            for mode in ("generate", "score"):
                print(f"ratio_concurrency8_over_1_{mode}={rates[mode, 8] / rates[mode, 1]:.2f}")
        finally:
            server.terminate()
            server.wait(timeout=30)
    from tunesmith.evaluation.backends import LocalBackend
    from tunesmith.modeling import load_for_inference

    model, tokenizer = load_for_inference(args.model)
    local = evaluate(LocalBackend(model, tokenizer), test, td.spec, mode="score")
    agree = sum(a == b for a, b in zip(scored.predictions, local.predictions))
    print(f"endpoint first-token scoring picks the in-process whole-label choice on {agree} of "
          f"{len(test)} examples (accuracy {scored.metrics['accuracy']:.3f} vs "
          f"{local.metrics['accuracy']:.3f}); {scored.notes or 'every example decided by scores'}")


def _wait(base: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(base.removesuffix("/v1") + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit("the server did not start")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
