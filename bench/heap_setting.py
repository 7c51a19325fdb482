"""What the heap setting (training/allocator.py) costs in memory over a long run, and buys in speed.

Trains LoRA (or full) on the first 1,600 examples of ../shared/data/sst2/chat/train.jsonl for one
epoch (200 steps of 8), once per mode, each in its own process, and prints resident and peak
memory every 25 steps and the run's tokens/s:

    keep     tunesmith's default: freed memory stays in the heap (mallopt)
    trim     the glibc default plus malloc_trim after every step (what the loop did before)
    every10  keep, plus malloc_trim every 10 steps

    python bench/heap_setting.py [--method lora|full] [--examples 1600] [--modes keep,trim,every10]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def rss_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return 0


def child(mode: str, method: str, examples: int) -> None:
    from tunesmith.config import TrainConfig
    from tunesmith.training import allocator, train
    from tunesmith.training.hooks import TrainHooks

    if mode == "trim":
        allocator.keep_freed_memory = lambda *a, **k: False
    every = {"trim": 1, "every10": 10}.get(mode)

    def on_record(entry: dict) -> None:
        step = entry.get("step", 0)
        if every and "tokens" in entry and step % every == 0:
            allocator.release_memory()
        if "tokens" in entry and step % 25 == 0:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            print(f"{mode:8} step {step:4}  rss {rss_mb():5} MB  peak {peak:5} MB", flush=True)

    lines = (SHARED / "sst2" / "chat" / "train.jsonl").read_text().splitlines()[:examples]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        data.write_text("\n".join(lines) + "\n")
        result = train(TrainConfig(train_file=str(data), out=str(Path(tmp) / "run"),
                                   method=method, epochs=1, batch_size=8, lr=1e-4,
                                   max_seq_len=512, warmup_ratio=0.0, quiet=True, seed=0),
                       TrainHooks(on_record=on_record))
    print(f"{mode:8} {method}: {result.tokens_per_s:.0f} tokens/s over {result.steps} steps")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="lora", choices=["lora", "full"])
    ap.add_argument("--examples", type=int, default=1600)
    ap.add_argument("--modes", default="keep,trim,every10")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        child(args.one, args.method, args.examples)
        return
    for mode in args.modes.split(","):
        subprocess.run([sys.executable, __file__, "--one", mode, "--method", args.method,
                        "--examples", str(args.examples)], check=True)


if __name__ == "__main__":
    main()
