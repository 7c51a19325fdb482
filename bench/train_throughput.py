"""Training throughput: tunesmith's loop against `transformers.Trainer`, in the same run.

Both fine-tune the embedded SmolLM2-135M-Instruct on the first 256 examples of
../shared/data/sst2/chat/train.jsonl for one epoch, with the same tokenized examples (loss on
the answer only), batch size 8, learning rate, clipping and LoRA config (r 16, alpha 32, dropout
0, all linear layers). Trainer uses its padding collator (DataCollatorForSeq2Seq) and runs in
fp32 and with `bf16=True`; tunesmith runs with its defaults (packed rows, output layer only where
loss is taken, bf16 autocast where the CPU supports it).

`trainer-*-bf16-heap` (not run by default: `--only ...`) is Trainer bf16 with tunesmith's glibc
heap setting (training/allocator.py), to show how much of the difference that setting alone makes;
the `ratio_*` lines compare against stock Trainer only.

Each configuration runs in its own process so peak RSS is its own. Throughput counts real
(non-padding) tokens over the wall time of the training steps (model loading, tokenization,
tunesmith's epoch-end checkpoint excluded). 6N-MFU = nominal model FLOPs / time / the matmul
peak measured here: 6 x parameters per token for full fine-tuning, 4 x for LoRA (no weight
gradients for the frozen weights), the same formula for both tools. It is nominal, not the FLOPs
actually run: tunesmith runs the output layer (a fifth of SmolLM2's parameters) only at the
answer positions, so it does less work per token than the formula counts and its column
reads high by that much; compare tokens/s.

    python bench/train_throughput.py [--examples 256] [--repeat 2] [--only tunesmith-lora,...]

Columns: best-round real tokens/s (each round's figure beside it), that round's seconds, the
highest peak RSS over rounds, MFU, and the mean training loss over the run (Trainer's
`training_loss` is that mean too).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CONFIGS = ("tunesmith-lora", "trainer-lora-fp32", "trainer-lora-bf16",
           "tunesmith-full", "trainer-full-fp32", "trainer-full-bf16")
BATCH, LR, MAX_LEN, SEED = 8, 1e-4, 512, 0


def examples_file(n: int, folder: Path) -> Path:
    lines = (SHARED / "sst2" / "chat" / "train.jsonl").read_text().splitlines()[:n]
    path = folder / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_tunesmith(method: str, data: Path, out: Path) -> dict:
    from tunesmith.config import TrainConfig
    from tunesmith.training import train

    result = train(TrainConfig(train_file=str(data), out=str(out), method=method, epochs=1,
                               batch_size=BATCH, lr=LR, max_seq_len=MAX_LEN, warmup_ratio=0.0,
                               quiet=True, seed=SEED))
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "tokens" in r]
    seconds = sum(r["tokens"] / r["tokens_per_s"] for r in steps)
    return {"tokens": sum(r["tokens"] for r in steps), "seconds": seconds,
            "mean_train_loss": sum(r["train_loss"] for r in steps) / len(steps),
            "params": _base_params(result.model)}


def run_trainer(method: str, bf16: bool, data: Path, out: Path) -> dict:
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    from tunesmith.data.formats import read_dataset
    from tunesmith.data.render import tokenize_example
    from tunesmith.modeling import load_model, load_tokenizer
    from tunesmith.training.methods import prepare_lora

    tok = load_tokenizer("smollm2-135m-instruct")
    items = [tokenize_example(tok, e, MAX_LEN) for e in read_dataset(data).examples]
    rows = [{"input_ids": x.input_ids, "labels": x.labels,
             "attention_mask": [1] * len(x.input_ids)} for x in items]
    torch.manual_seed(SEED)
    model = load_model("smollm2-135m-instruct")
    if method == "lora":
        from tunesmith.config import TrainConfig

        model = prepare_lora(model, TrainConfig())
    timer = {}

    class Timer(TrainerCallback):
        def on_train_begin(self, *a, **k):
            timer["start"] = time.perf_counter()

        def on_train_end(self, *a, **k):
            timer["end"] = time.perf_counter()

    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=BATCH, num_train_epochs=1,
        learning_rate=LR, max_grad_norm=1.0, lr_scheduler_type="cosine", warmup_steps=0,
        bf16=bf16, use_cpu=True, save_strategy="no", report_to=[], logging_steps=1000,
        dataloader_num_workers=0, seed=SEED, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=rows,
                      data_collator=DataCollatorForSeq2Seq(tok, padding=True),
                      callbacks=[Timer()])
    out_ = trainer.train()
    return {"tokens": sum(len(x.input_ids) for x in items), "seconds": timer["end"] - timer["start"],
            "mean_train_loss": out_.training_loss, "params": _base_params(model)}


def _base_params(model) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)


def matmul_peak(dtype_name: str) -> float:
    """FLOP/s of a large square matmul on this machine (best of 5)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    n = 2048
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def child(name: str, examples: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = examples_file(examples, Path(tmp))
        tool, method = name.split("-")[:2]
        if tool == "tunesmith":
            result = run_tunesmith(method, data, Path(tmp) / "run")
        else:
            if name.endswith("-heap"):
                from tunesmith.training.allocator import keep_freed_memory

                keep_freed_memory()
            result = run_trainer(method, "-bf16" in name, data, Path(tmp) / "run")
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=256)
    ap.add_argument("--only", default=",".join(CONFIGS))
    ap.add_argument("--repeat", type=int, default=2,
                    help="rounds over all configurations, interleaved; the best round of each "
                    "counts (timings on shared machines move 15-20%% between runs)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        child(args.one, args.examples)
        return
    import torch

    from tunesmith.modeling import supports_bf16

    peaks = {"fp32": matmul_peak("fp32"), "bf16": matmul_peak("bf16")}
    ts_dtype = "bf16" if supports_bf16(torch.device("cpu")) else "fp32"
    print(f"threads={torch.get_num_threads()} matmul_peak_fp32={peaks['fp32'] / 1e9:.0f} GFLOP/s "
          f"matmul_peak_bf16={peaks['bf16'] / 1e9:.0f} GFLOP/s (tunesmith autocast: {ts_dtype})")
    results: dict[str, dict] = {}
    rounds: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for name in args.only.split(","):
            env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
            proc = subprocess.run([sys.executable, __file__, "--one", name, "--examples",
                                   str(args.examples)], capture_output=True, text=True, env=env)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode or line is None:
                print(f"{name}: FAILED\n{proc.stderr[-2000:]}")
                continue
            r = json.loads(line[7:])
            rounds.setdefault(name, []).append(r["tokens"] / r["seconds"])
            best = results.get(name)
            if best is None or r["seconds"] < best["seconds"]:
                r["peak_rss_mb"] = max(r["peak_rss_mb"], best["peak_rss_mb"] if best else 0)
                results[name] = r
            else:
                best["peak_rss_mb"] = max(best["peak_rss_mb"], r["peak_rss_mb"])
    header = f"{'config':24} {'real tok/s':>10} {'rounds':>13} {'seconds':>8} {'peak RSS MB':>11} " \
             f"{'6N-MFU':>6} {'mean loss':>9}"
    print(header)
    for name, r in results.items():
        dtype = ts_dtype if name.startswith("tunesmith") else ("bf16" if "-bf16" in name else "fp32")
        per_token = (6 if "-full" in name else 4) * r["params"]
        mfu = r["tokens"] * per_token / r["seconds"] / peaks[dtype]
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
        each = "/".join(f"{x:.0f}" for x in rounds[name])
        print(f"{name:24} {r['tokens_per_s']:10.1f} {each:>13} {r['seconds']:8.1f} "
              f"{r['peak_rss_mb']:11.0f} {100 * mfu:5.1f}% {r['mean_train_loss']:9.4f}")
    for method in ("lora", "full"):
        ours = results.get(f"tunesmith-{method}")
        theirs = [results[k] for k in results
                  if k.startswith(f"trainer-{method}") and not k.endswith("-heap")]
        if ours and theirs:
            best = max(t["tokens_per_s"] for t in theirs)
            print(f"ratio_{method}={ours['tokens_per_s'] / best:.2f}")
        heap = results.get(f"trainer-{method}-bf16-heap")
        if ours and heap:
            print(f"ratio_{method}_vs_trainer_bf16_same_heap_setting="
                  f"{ours['tokens_per_s'] / heap['tokens_per_s']:.2f}")
    if "tunesmith-lora" in results and "tunesmith-full" in results:
        print(f"rss_lora_over_full="
              f"{results['tunesmith-lora']['peak_rss_mb'] / results['tunesmith-full']['peak_rss_mb']:.2f}")


if __name__ == "__main__":
    main()
