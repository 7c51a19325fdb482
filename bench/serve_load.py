"""Chat completions under load: 32 concurrent requests to a live `tunesmith serve` with the
embedded SmolLM2-135M-Instruct, batched (--max-batch 16) and one at a time (--max-batch 1),
and plain transformers `generate` of the same prompts one after another in this process (the
standard tool, no HTTP), in the same run. Prints requests/s, p50/p95 latency and generated
tokens/s for each, and the ratios.

    python bench/serve_load.py [--requests 32] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from tests.serve.conftest import free_port

PROMPTS = ["My solar inverter shows a red light, what should I do?",
           "Write one sentence about the sea.", "What is 12 times 7?",
           "Name three colours.", "Summarise: the meeting moved to Friday at noon.",
           "Translate 'good morning' into French.", "Give me a title for a blog about bread.",
           "Is a tomato a fruit?"]


async def _load(url: str, n: int, max_tokens: int) -> dict:
    async with httpx.AsyncClient(timeout=600) as client:
        async def one(i: int) -> tuple[float, int]:
            t = time.perf_counter()
            r = await client.post(f"{url}/chat/completions", json={
                "model": "smollm2-135m-instruct", "max_tokens": max_tokens, "temperature": 0,
                "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]})
            r.raise_for_status()
            return time.perf_counter() - t, r.json()["usage"]["completion_tokens"]

        await one(0)  # warm-up: loads the model
        start = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - start
    latencies = sorted(r[0] for r in results)
    return {"rps": n / wall, "p50": statistics.median(latencies),
            "p95": latencies[min(n - 1, round(0.95 * (n - 1)))],
            "tok_s": sum(r[1] for r in results) / wall}


def _serve(max_batch: int, args) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        proc = subprocess.Popen([sys.executable, "-m", "tunesmith", "serve", "--port", str(port),
                                 "--home", home, "--no-worker", "--max-batch", str(max_batch)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(600):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            return asyncio.run(_load(f"http://127.0.0.1:{port}/v1", args.requests,
                                     args.max_tokens))
        finally:
            proc.terminate()
            proc.wait()


def _plain_generate(args) -> dict:
    import torch

    from tunesmith.data.render import render
    from tunesmith.modeling import load_for_inference

    model, tok = load_for_inference("smollm2-135m-instruct")
    latencies, tokens = [], 0
    start = time.perf_counter()
    for i in range(args.requests + 1):
        text = render(tok, [[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]],
                      add_generation_prompt=True)[0]
        ids = tok(text, return_tensors="pt", add_special_tokens=False)
        t = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=args.max_tokens, do_sample=False,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        if i == 0:  # warm-up
            start = time.perf_counter()
            continue
        latencies.append(time.perf_counter() - t)
        tokens += out.shape[1] - ids["input_ids"].shape[1]
    wall = time.perf_counter() - start
    latencies.sort()
    n = len(latencies)
    return {"rps": n / wall, "p50": statistics.median(latencies),
            "p95": latencies[min(n - 1, round(0.95 * (n - 1)))], "tok_s": tokens / wall}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=32)
    args = ap.parse_args()
    print(f"{args.requests} concurrent chat completions, max_tokens {args.max_tokens}, greedy")
    print(f"{'engine':22} {'req/s':>7} {'p50 s':>7} {'p95 s':>7} {'tokens/s':>9}")
    rows = {}
    for name, batch in (("batched (max 16)", 16), ("one at a time", 1)):
        rows[name] = r = _serve(batch, args)
        print(f"{name:22} {r['rps']:7.2f} {r['p50']:7.2f} {r['p95']:7.2f} {r['tok_s']:9.1f}",
              flush=True)
    name = "plain HF generate"
    rows[name] = r = _plain_generate(args)
    print(f"{name:22} {r['rps']:7.2f} {'':>7} {'':>7} {r['tok_s']:9.1f}  (per request: "
          f"p50 {r['p50']:.2f} s, served one after another)")
    print(f"ratio_batched_over_plain_generate={rows['batched (max 16)']['rps'] / rows[name]['rps']:.2f}")
    print(f"ratio_batched_over_serial={rows['batched (max 16)']['rps'] / rows['one at a time']['rps']:.2f}")


if __name__ == "__main__":
    main()
