"""`tunesmith train`: fine-tune a model (LoRA or full) on a prepared data set."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tunesmith.cli import args as types
from tunesmith.config import TrainConfig
from tunesmith.errors import UsageError
from tunesmith.modeling import DEFAULT_MODEL


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="fine-tune a model (LoRA or full) on a data set",
        description="Fine-tune with loss on the answers only, packed examples, epoch checkpoints. "
        "Writes RUN/config.yaml, metrics.jsonl, results.csv, loss.png, checkpoints/, final/. "
        "Runs unchanged under torchrun for several processes.")
    src = p.add_argument_group("data")
    src.add_argument("--data", metavar="DIR", help="a `data prepare` folder (train.jsonl, "
                     "validation.jsonl, task.json)")
    src.add_argument("--train", metavar="FILE", help="training file (instead of --data)")
    src.add_argument("--val", metavar="FILE", help="validation file (with --train)")
    m = p.add_argument_group("model and method")
    m.add_argument("--model", default=DEFAULT_MODEL, help="base model (default: %(default)s)")
    m.add_argument("--method", choices=["lora", "full"], default="lora")
    m.add_argument("--lora-r", type=types.positive_int, default=16)
    m.add_argument("--lora-alpha", type=types.positive_int, default=32)
    m.add_argument("--lora-dropout", type=types.fraction, default=0.0)
    m.add_argument("--lora-targets", default="all-linear",
                   help="comma-separated module names or all-linear (default)")
    h = p.add_argument_group("hyperparameters ('auto' follows OpenAI's rules scaled to the data)")
    h.add_argument("--epochs", type=types.auto_or(types.positive_int), default="auto")
    h.add_argument("--batch-size", type=types.auto_or(types.positive_int), default="auto", help="examples per step")
    h.add_argument("--lr", type=types.auto_or(types.float_range(0, 1, low_open=True, high_open=True)),
                   default="auto", help="peak learning rate")
    h.add_argument("--schedule", choices=["cosine", "linear", "constant"], default="cosine")
    h.add_argument("--warmup-ratio", type=types.fraction, default=0.05)
    h.add_argument("--weight-decay", type=types.non_negative_float, default=0.0)
    h.add_argument("--max-grad-norm", type=types.non_negative_float, default=1.0)
    h.add_argument("--seed", type=types.seed, default=0)
    e = p.add_argument_group("execution")
    e.add_argument("--max-seq-len", type=types.int_range(16), default=1024, help="tokens per example")
    e.add_argument("--no-pack", dest="pack", action="store_false",
                   help="one example per row, padded (default: examples end to end, no padding)")
    e.add_argument("--micro-batch-tokens", type=types.positive_int, default=4096,
                   help="tokens per forward pass; bigger steps accumulate gradients")
    e.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    e.add_argument("--gradient-checkpointing", action="store_true")
    e.add_argument("--device", default="auto")
    e.add_argument("--eval-every", type=types.non_negative_int, default=0, help="steps; 0 = about 10 per run")
    e.add_argument("--out", default="runs/run", metavar="RUN", help="run folder")
    e.add_argument("--resume", action="store_true", help="continue RUN from its last checkpoint")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    if bool(args.data) == bool(args.train):
        raise UsageError("give either --data DIR or --train FILE.")
    if args.data:
        folder = Path(args.data)
        train_file = folder / "train.jsonl"
        if not train_file.is_file():
            raise UsageError(f"--data {folder}: no train.jsonl (make it with `tunesmith data "
                             "prepare`).")
        val = folder / "validation.jsonl"
        val_file = str(val) if val.is_file() and val.stat().st_size > 0 else None
    else:
        train_file, val_file = Path(args.train), args.val
    return TrainConfig(
        train_file=str(train_file), val_file=val_file, out=args.out, model=args.model,
        method=args.method, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        max_seq_len=args.max_seq_len, pack=args.pack, micro_batch_tokens=args.micro_batch_tokens,
        schedule=args.schedule, warmup_ratio=args.warmup_ratio, weight_decay=args.weight_decay,
        max_grad_norm=args.max_grad_norm, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout, lora_targets=args.lora_targets, precision=args.precision,
        gradient_checkpointing=args.gradient_checkpointing, eval_every=args.eval_every,
        seed=args.seed, device=args.device, quiet=args.quiet, resume=args.resume)


def run(args: argparse.Namespace) -> int:
    from tunesmith.training import train

    result = train(config_from_args(args))
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 0
    cfg = result.config
    print(f"\n{cfg.method} fine-tuning of {cfg.model}: {result.steps} steps, "
          f"{result.trained_tokens:,} tokens in {result.seconds:,.0f} s "
          f"({result.tokens_per_s:,.0f} tokens/s)")
    if result.initial_valid_loss is not None and result.final_valid_loss is not None:
        print(f"validation loss {result.initial_valid_loss:.4f} -> {result.final_valid_loss:.4f}"
              + (f" (best epoch {result.best_epoch})" if result.best_epoch else ""))
    print(f"run folder {result.run_dir}: config.yaml metrics.jsonl results.csv loss.png "
          f"checkpoints/ final/")
    return 0
