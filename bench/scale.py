"""100,000 synthetic chat examples: read, tokenize and plan the packed steps of an epoch, the
first time (tokenizing) and the second (the token cache), each in a fresh process, against the
one-example-at-a-time path with Python lists that training used before; wall time and peak RSS.

    python bench/scale.py [--examples 100000]

Aims (issue 14): first run under 60 s, cached under 5 s, token storage under 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ["the", "a", "to", "of", "and", "in", "is", "it", "you", "that", "was", "for", "on", "are", "with", "as", "I", "his", "they", "be", "at", "one", "have", "this", "from", "or", "had", "by", "hot", "word", "but", "what", "some", "we", "can", "out", "other", "were", "all", "there", "when", "up", "use", "your", "how", "said", "an", "each", "she", "which", "do", "their", "time", "if", "will", "way", "about", "many", "then", "them", "write", "would", "like", "so", "these", "her", "long", "make", "thing", "see", "him", "two", "has", "look", "more", "day", "could", "go", "come", "did", "number", "sound", "no", "most", "people", "my", "over", "know", "water", "than", "call", "first", "who", "may", "down", "side", "been", "now", "find", "refund", "invoice", "order", "delivery", "account", "password", "charge", "battery", "panel", "meter"]

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from tunesmith.data.formats import read_dataset
from tunesmith.data.packing import pack
from tunesmith.data.render import tokenize_example
from tunesmith.data.tokencache import tokenize_many
from tunesmith.modeling import load_tokenizer
from tunesmith.data.steps import epoch_steps
mode, path = sys.argv[1], sys.argv[2]
tok = load_tokenizer("smollm2-135m-instruct")
t1 = time.perf_counter()
examples = read_dataset(path).examples
t2 = time.perf_counter()
rss_examples = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if mode == "lists":
    items = [tokenize_example(tok, e, 2048) for e in examples]
else:
    items = tokenize_many(tok, examples, 2048, path)
t3 = time.perf_counter()
lengths = [len(x.input_ids) for x in items]
rows = 0
for step in epoch_steps(lengths, 0, 0, 64):
    rows += len(pack([lengths[i] for i in step], 16384))
t4 = time.perf_counter()
print(json.dumps({"read_s": t2 - t1, "tokenize_s": t3 - t2, "plan_s": t4 - t3,
                  "tokens": sum(lengths), "rows": rows,
                  "rss_after_read_mb": rss_examples,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_data(path: Path, n: int) -> None:
    rng = random.Random(0)
    with path.open("w") as f:
        for _ in range(n):
            q = " ".join(rng.choices(WORDS, k=rng.randint(8, 60)))
            a = " ".join(rng.choices(WORDS, k=rng.randint(4, 80)))
            f.write(json.dumps({"messages": [
                {"role": "system", "content": "You are the support agent of a solar company."},
                {"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n")


def run(mode: str, path: Path, home: Path) -> dict:
    env = {**os.environ, "TUNESMITH_HOME": str(home)}
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(path)], env=env, check=True,
                         capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "chat.jsonl"
        make_data(data, args.examples)
        print(f"{args.examples:,} chat examples, {data.stat().st_size / 1e6:.0f} MB, "
              f"{os.cpu_count()} CPUs")
        home = tmp / "home"
        warm = "from tunesmith.modeling import load_tokenizer; load_tokenizer(None)"
        subprocess.run([sys.executable, "-c", warm], env={**os.environ, "TUNESMITH_HOME":
                                                          str(home)}, check=True)  # GGUF once
        results = {"lists (before)": run("lists", data, home),
                   "arrays, first run": run("arrays", data, home),
                   "arrays, cached": run("arrays", data, home)}
        print(f"{'path':<20}{'read s':>8}{'tokenize s':>12}{'plan s':>8}{'tokens':>13}"
              f"{'RSS after read':>16}{'peak RSS':>10}")
        for name, r in results.items():
            print(f"{name:<20}{r['read_s']:8.1f}{r['tokenize_s']:12.1f}{r['plan_s']:8.1f}"
                  f"{r['tokens']:13,}{r['rss_after_read_mb']:13,.0f} MB{r['peak_rss_mb']:7,.0f} MB")
        lists, first, cached = results.values()
        token_mb = lambda r: r["peak_rss_mb"] - r["rss_after_read_mb"]  # noqa: E731
        print(f"tokenize_speedup_first={lists['tokenize_s'] / first['tokenize_s']:.2f}x "
              f"cached={lists['tokenize_s'] / cached['tokenize_s']:.1f}x; "
              f"token_memory_mb lists={token_mb(lists):,.0f} arrays={token_mb(first):,.0f} "
              f"cached={token_mb(cached):,.0f}")


if __name__ == "__main__":
    main()
