"""DPO on a real model: SmolLM2-135M-Instruct learns SST-2 sentiment from preference pairs made
from the labels (preferred: the right label; rejected: the other), against supervised
fine-tuning on the same examples' right answers, in one run; macro-F1 on the same test
examples (label scoring), before and after.

    python bench/dpo_sst2.py [--pairs 200] [--test 200] [--epochs 2]

Needs ../shared/data/sst2 (not part of the product).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "chat"


def rows(path: Path, n: int) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()[:n]]


def preference(row: dict) -> dict:
    *prompt, answer = row["messages"]
    other = "negative" if answer["content"] == "positive" else "positive"
    return {"input": {"messages": prompt}, "preferred_output": [answer],
            "non_preferred_output": [{"role": "assistant", "content": other}]}


def tunesmith(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "tunesmith", *args], capture_output=True,
                         text=True, check=True)
    return out.stdout


def macro_f1(model: str, test: Path) -> float:
    doc = json.loads(tunesmith("eval", "--model", model, "--data", str(test), "--json"))
    assert doc["metric"] == "macro_f1", doc["metric"]
    return doc["score"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--dpo-lr", default="auto", help="--lr of the DPO run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train = rows(SHARED / "train.jsonl", args.pairs)
        val = rows(SHARED / "validation.jsonl", 50)
        (tmp / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
        (tmp / "sft_val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in val))
        (tmp / "pref.jsonl").write_text("".join(json.dumps(preference(r)) + "\n" for r in train))
        (tmp / "pref_val.jsonl").write_text("".join(json.dumps(preference(r)) + "\n"
                                                    for r in val))
        test = tmp / "test.jsonl"
        test.write_text("".join(json.dumps(r) + "\n" for r in rows(SHARED / "test.jsonl",
                                                                    args.test)))
        print(f"{args.pairs} training pairs / examples, {args.test} test examples, "
              f"{args.epochs} epochs, LoRA, DPO lr {args.dpo_lr}")
        base = macro_f1("smollm2-135m-instruct", test)
        print(f"{'base model':<28} macro-F1 {base:.3f}", flush=True)
        for name, flags in (("DPO (--method dpo)", ["--train", str(tmp / "pref.jsonl"), "--val",
                                                     str(tmp / "pref_val.jsonl"), "--method",
                                                     "dpo", "--lr", args.dpo_lr]),
                            ("SFT (--method lora)", ["--train", str(tmp / "sft.jsonl"), "--val",
                                                     str(tmp / "sft_val.jsonl")])):
            run = tmp / name.split()[0]
            t = time.perf_counter()
            tunesmith("train", *flags, "--epochs", str(args.epochs), "--out", str(run), "--quiet")
            seconds = time.perf_counter() - t
            records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
            full = [r for r in records if "full_valid_loss" in r]
            extra = ""
            if "full_valid_preference_accuracy" in full[-1]:
                extra = (f", validation preference accuracy "
                         f"{full[0]['full_valid_preference_accuracy']:.2f} -> "
                         f"{full[-1]['full_valid_preference_accuracy']:.2f}, reward margin "
                         f"{full[-1]['full_valid_reward_margin']:.2f}")
            print(f"{name:<28} macro-F1 {macro_f1(str(run), test):.3f}  (train {seconds:.0f} s"
                  f"{extra})", flush=True)


if __name__ == "__main__":
    main()
