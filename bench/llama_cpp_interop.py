"""tunesmith's GGUF export served by llama.cpp's own OpenAI-compatible server, evaluated through
`openai:NAME`, against the same model in-process (needs `make test-interop` once, which builds
and installs llama-cpp-python[server]).

    python bench/llama_cpp_interop.py [--examples 60]

Prints the export's size and time, how often llama.cpp's answers match the in-process model's
(generation and first-token scoring), and both accuracies.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=60)
    ap.add_argument("--data", default=str(SHARED / "sst2" / "chat"))
    args = ap.parse_args()

    from tunesmith.data.splits import load_task_data
    from tunesmith.endpoints import EndpointClient, resolve_endpoint
    from tunesmith.evaluation.backends import EndpointBackend, LocalBackend
    from tunesmith.evaluation.runner import evaluate
    from tunesmith.export import export
    from tunesmith.modeling import load_for_inference

    td = load_task_data(args.data)
    test = td.test[: args.examples]
    with tempfile.TemporaryDirectory() as tmp:
        gguf = Path(tmp) / "smollm2-f16.gguf"
        start = time.perf_counter()
        export("smollm2-135m-instruct", "gguf", gguf)
        print(f"tunesmith export: {gguf.stat().st_size / 1e6:.1f} MB GGUF (f16) in "
              f"{time.perf_counter() - start:.1f} s")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--port", str(port),
             "--n_ctx", "2048", "--model_alias", "export", "--n_threads", "2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}/v1"
            start = time.perf_counter()
            while True:
                try:
                    if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
            print(f"llama.cpp server (llama-cpp-python) up in {time.perf_counter() - start:.1f} s")
            backend = EndpointBackend(EndpointClient(resolve_endpoint("openai:export", base),
                                                     concurrency=1, cache=None))
            remote = {m: evaluate(backend, test, td.spec, mode=m) for m in ("generate", "score")}
        finally:
            server.terminate()
            server.wait(timeout=30)
    model, tokenizer = load_for_inference("smollm2-135m-instruct")
    local_backend = LocalBackend(model, tokenizer)
    local = {m: evaluate(local_backend, test, td.spec, mode=m) for m in ("generate", "score")}
    print(f"{len(test)} {td.spec.task} examples from {args.data}")
    print(f"{'mode':9} {'same answer':>11} {'llama.cpp acc':>13} {'in-process acc':>14}")
    for mode in ("generate", "score"):
        same = sum(a == b for a, b in zip(remote[mode].predictions, local[mode].predictions))
        print(f"{mode:9} {same:>5} of {len(test):<3} {remote[mode].metrics['accuracy']:13.3f} "
              f"{local[mode].metrics['accuracy']:14.3f}")
    print(f"prompt tokens/request: llama.cpp {remote['generate'].prompt_tokens:.1f}, "
          f"in-process {local['generate'].prompt_tokens:.1f}")
    for note in remote["score"].notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
