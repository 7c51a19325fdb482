"""What QLoRA and 8-bit AdamW save, and what they cost, on a real model: SmolLM2-135M-Instruct
fine-tuned on SST-2, each run in a fresh process, side by side in one run:

    lora            LoRA, base weights in bf16 (autocast)       vs  qlora (the base in 4 bits)
    full            full fine-tuning, AdamW (fp32 moments)      vs  full + --optimizer adamw-8bit

Printed per run: training seconds, the process's peak RSS, the bytes of the model's weights as
held, the size of the epoch checkpoint's optimizer.pt (the optimizer state), and macro-F1 on the
same test examples (label scoring) after training.

    python bench/memory_levers.py [--train 300] [--test 200] [--epochs 1]

Needs ../shared/data/sst2 (not part of the product) and bitsandbytes (`tunesmith[quantize]`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "chat"

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from tunesmith.config import TrainConfig
from tunesmith.training import train
from tunesmith.training.quantization import quantized_bytes

kw = json.loads(sys.argv[1])
t = time.perf_counter()
result = train(TrainConfig(**kw))
seconds = time.perf_counter() - t
optimizer = max(Path(kw["out"], "checkpoints").glob("epoch-*/optimizer.pt"))
print(json.dumps({"seconds": seconds, "weights_mb": quantized_bytes(result.model) / 2**20,
                  "optimizer_mb": optimizer.stat().st_size / 2**20,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

RUNS = {
    "lora": {"method": "lora"},
    "qlora": {"method": "qlora"},
    "full": {"method": "full"},
    "full-8bit": {"method": "full", "optimizer": "adamw-8bit"},
}


def rows(path: Path, n: int) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()[:n]]


def write(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in items))
    return path


def macro_f1(model: str, test: Path) -> float:
    out = subprocess.run([sys.executable, "-m", "tunesmith", "eval", "--model", model, "--data",
                          str(test), "--json"], capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout)
    assert doc["metric"] == "macro_f1", doc["metric"]
    return doc["score"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=300)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_file = write(tmp / "train.jsonl", rows(SHARED / "train.jsonl", args.train))
        val_file = write(tmp / "val.jsonl", rows(SHARED / "validation.jsonl", 50))
        test = write(tmp / "test.jsonl", rows(SHARED / "test.jsonl", args.test))
        print(f"SmolLM2-135M-Instruct, SST-2: {args.train} training examples, {args.epochs} "
              f"epoch(s), {args.test} test examples; bf16 autocast")
        print(f"{'run':<10} {'train s':>8} {'peak RSS MB':>12} {'weights MB':>11} "
              f"{'optimizer MB':>13} {'macro-F1':>9}")
        measured = {}
        for name, extra in RUNS.items():
            kw = {"train_file": str(train_file), "val_file": str(val_file),
                  "out": str(tmp / name), "epochs": args.epochs, "quiet": True, **extra}
            out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(kw)],
                                 capture_output=True, text=True, check=False)
            if out.returncode != 0:
                sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
            m = json.loads(out.stdout.strip().splitlines()[-1])
            m["f1"] = macro_f1(str(tmp / name), test)
            measured[name] = m
            print(f"{name:<10} {m['seconds']:>8.0f} {m['peak_rss_mb']:>12.0f} "
                  f"{m['weights_mb']:>11.1f} {m['optimizer_mb']:>13.1f} {m['f1']:>9.3f}",
                  flush=True)
        q, lo, f8, f = (measured[k] for k in ("qlora", "lora", "full-8bit", "full"))
        print(f"qlora/lora: weights {q['weights_mb'] / lo['weights_mb']:.2f}x, time "
              f"{q['seconds'] / lo['seconds']:.2f}x, macro-F1 {q['f1'] - lo['f1']:+.3f}")
        print(f"adamw-8bit/adamw: optimizer state {f8['optimizer_mb'] / f['optimizer_mb']:.2f}x, "
              f"time {f8['seconds'] / f['seconds']:.2f}x, macro-F1 {f8['f1'] - f['f1']:+.3f}")


if __name__ == "__main__":
    main()
