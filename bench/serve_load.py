"""Chat completions under load, two parts in one run.

1. Mixed adapters: 64 concurrent clients (each sends its requests one after another) over 4
   random-init LoRA adapters of the embedded SmolLM2-135M-Instruct, registered as fine-tuned
   models of a live `tunesmith serve`; answer budgets vary (max_tokens 16-128, greedy). The
   continuous-batching engine (`--engine continuous`, the default) against the earlier static
   one (`--engine static`: a batch of one model runs until its longest answer ends), with the
   same --max-batch. Prints requests/s, p50/p95 latency, generated tokens/s and a ratio line.
2. One base model (skip with --skip-base): 32 concurrent requests, batched and one at a time,
   and plain transformers `generate` of the same prompts one after another in this process.

    python bench/serve_load.py [--clients 64] [--per-client 4] [--requests 32] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.serve.conftest import free_port

PROMPTS = ["My solar inverter shows a red light, what should I do?",
           "Write one sentence about the sea.", "What is 12 times 7?",
           "Name three colours.", "Summarise: the meeting moved to Friday at noon.",
           "Translate 'good morning' into French.", "Give me a title for a blog about bread.",
           "Is a tomato a fruit?"]


ADAPTERS = 4
BUDGETS = [16, 48, 96, 128]
"""max_tokens of a client's successive requests (shifted per client): answers of mixed lengths."""


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    latencies = sorted(latencies)
    n = len(latencies)
    return statistics.median(latencies), latencies[min(n - 1, round(0.95 * (n - 1)))]


def _make_adapters(home: Path) -> list[str]:
    """4 random-init LoRA adapters of the embedded model, saved under `home` and registered as
    fine-tuned models (what a finished job leaves). Returns their model ids."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model

    from tunesmith.jobs.database import open_store
    from tunesmith.jobs.models import ModelRecord
    from tunesmith.modeling import DEFAULT_MODEL, load_model

    store = open_store(str(home / "tunesmith.db"))
    ids = []
    for i in range(ADAPTERS):
        model = get_peft_model(load_model(DEFAULT_MODEL, home=home), LoraConfig(
            r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
        torch.manual_seed(i)
        for name, p in model.named_parameters():
            if "lora_B" in name:  # B starts at 0 (no change): make each adapter its own model
                p.data.normal_(0, 0.02)
        folder = home / "models" / f"bench-{i}"
        model.save_pretrained(folder)
        config = json.loads((folder / "adapter_config.json").read_text())
        config["base_model_name_or_path"] = DEFAULT_MODEL  # the server's own copy of it
        (folder / "adapter_config.json").write_text(json.dumps(config))
        ids.append(f"ft:{DEFAULT_MODEL}:bench-{i}")
        store.add_model(ModelRecord(ids[-1], None, "fine-tuned", f"models/bench-{i}"))
    return ids


async def _clients(url: str, models: list[str], clients: int, per_client: int) -> dict:
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=clients)
                                 ) as http:
        async def ask(model: str, i: int, max_tokens: int) -> tuple[float, int]:
            t = time.perf_counter()
            r = await http.post(f"{url}/chat/completions", json={
                "model": model, "max_tokens": max_tokens, "temperature": 0,
                "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]})
            r.raise_for_status()
            return time.perf_counter() - t, r.json()["usage"]["completion_tokens"]

        async def client(c: int) -> list[tuple[float, int]]:
            return [await ask(models[c % len(models)], c + k, BUDGETS[(c + k) % len(BUDGETS)])
                    for k in range(per_client)]

        for model in models:  # warm-up: loads the base and each adapter
            await ask(model, 0, 4)
        start = time.perf_counter()
        results = [r for rs in await asyncio.gather(*(client(c) for c in range(clients)))
                   for r in rs]
        wall = time.perf_counter() - start
    p50, p95 = _percentiles([r[0] for r in results])
    return {"rps": len(results) / wall, "p50": p50, "p95": p95,
            "tok_s": sum(r[1] for r in results) / wall}


def _adapter_load(args) -> None:
    print(f"{args.clients} concurrent clients x {args.per_client} requests over {ADAPTERS} LoRA "
          f"adapters, max_tokens {BUDGETS}, greedy, --max-batch {args.max_batch}")
    print(f"{'engine':22} {'req/s':>7} {'p50 s':>7} {'p95 s':>7} {'tokens/s':>9}")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        models = _make_adapters(home)
        for engine in ("continuous", "static"):
            rows[engine] = r = _with_server(
                home, ["--engine", engine, "--max-batch", str(args.max_batch)],
                lambda url: asyncio.run(_clients(url, models, args.clients, args.per_client)))
            print(f"{engine:22} {r['rps']:7.2f} {r['p50']:7.2f} {r['p95']:7.2f} "
                  f"{r['tok_s']:9.1f}", flush=True)
    c, s = rows["continuous"], rows["static"]
    print(f"ratio_continuous_over_static tokens/s={c['tok_s'] / s['tok_s']:.2f} "
          f"req/s={c['rps'] / s['rps']:.2f} p95={c['p95'] / s['p95']:.2f} (lower is better)")


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


def _with_server(home: Path, flags: list[str], work):
    """Run `work(url)` against a live `tunesmith serve` over `home`."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith", "serve", "--port", str(port),
                             "--home", str(home), "--no-worker", *flags],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        return work(f"http://127.0.0.1:{port}/v1")
    finally:
        proc.terminate()
        proc.wait()


def _serve(max_batch: int, args) -> dict:
    with tempfile.TemporaryDirectory() as home:
        return _with_server(Path(home), ["--max-batch", str(max_batch)],
                            lambda url: asyncio.run(_load(url, args.requests, args.max_tokens)))


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


def _base_load(args) -> None:
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=64, help="concurrent clients (part 1)")
    ap.add_argument("--per-client", type=int, default=4, help="requests per client (part 1)")
    ap.add_argument("--max-batch", type=int, default=64, help="--max-batch of both engines")
    ap.add_argument("--requests", type=int, default=32, help="concurrent requests (part 2)")
    ap.add_argument("--max-tokens", type=int, default=32, help="max_tokens (part 2)")
    ap.add_argument("--skip-base", action="store_true", help="part 1 only")
    args = ap.parse_args()
    _adapter_load(args)
    if not args.skip_base:
        print()
        _base_load(args)


if __name__ == "__main__":
    main()
