"""`tunesmith train`: fine-tune a model (LoRA or full) on a prepared data set."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tunesmith.cli.fields import add_fields, field_values
from tunesmith.cli.output import table
from tunesmith.config import TrainConfig
from tunesmith.errors import UsageError
from tunesmith.studies.tune import tune
from tunesmith.training import train

GROUPS = {
    "model and method": ["model", "method", "quantize", "loss", "beta", "head", "lora_r",
                         "lora_alpha", "lora_dropout", "lora_targets"],
    "hyperparameters ('auto': epochs by OpenAI's published rule, batch and rate by tunesmith's)": [
        "epochs", "batch_size", "batch_tokens", "lr", "lr_multiplier", "schedule", "warmup_ratio",
        "weight_decay", "max_grad_norm", "seed"],
    "execution": ["max_seq_len", "pack", "micro_batch_tokens", "precision", "optimizer",
                  "gradient_checkpointing", "device", "distributed", "eval_every", "eval_examples", "out",
                  "resume", "save_every_steps", "save_every_minutes", "quiet"],
    "settings chosen on validation": ["tune", "tune_budget_minutes", "tune_examples"],
    "experiment tracking": ["report_to", "wandb_project", "wandb_entity", "wandb_name",
                            "wandb_tags"],
}
"""Every TrainConfig field but the data files is a flag, built from the dataclass (its docstring
is the help); a test checks that no field is left out."""
FLAGS = {"out": "--out"}
DATA_FIELDS = ("train_file", "val_file")
"""Set from --data DIR, or --train FILE and --val FILE."""


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
    for title, names in GROUPS.items():
        add_fields(p.add_argument_group(title), TrainConfig, names, flags=FLAGS)
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
    values = field_values(args, [name for names in GROUPS.values() for name in names])
    return TrainConfig(train_file=str(train_file), val_file=val_file, **values)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if config.tune:
        return run_tune(config)
    result = train(config)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 0
    cfg = result.config
    method = "qlora" if cfg.quantize == "4bit" else cfg.method
    kind = f"{method} DPO" if cfg.loss == "dpo" else f"{method} fine-tuning"
    print(f"\n{kind} of {cfg.model}: {result.steps} steps, "
          f"{result.trained_tokens:,} tokens in {result.seconds:,.0f} s "
          f"({result.tokens_per_s:,.0f} tokens/s)")
    if result.initial_valid_loss is not None and result.final_valid_loss is not None:
        print(f"validation loss {result.initial_valid_loss:.4f} -> {result.final_valid_loss:.4f}"
              + (f" (best epoch {result.best_epoch})" if result.best_epoch else ""))
    print(f"run folder {result.run_dir}: config.yaml metrics.jsonl results.csv loss.png "
          f"checkpoints/ final/")
    return 0


def run_tune(config: TrainConfig) -> int:
    result = tune(config)
    rows = [[f"x{t.lr_factor:g}", f"{t.lr:.2g}" if t.lr else "",
             " ".join(f"{m:.3f}" for m in t.epochs), str(t.best_epoch or ""),
             "" if t.best_metric is None else f"{t.best_metric:.3f}", t.stopped,
             f"{t.seconds:.0f} s", "<- best" if t is result.best else ""]
            for t in result.trials]
    print(f"\nsettings chosen on {result.examples} validation examples ({result.metric}), "
          f"{result.seconds / 60:.1f} of {result.budget_minutes:g} budget minutes:")
    print(table(rows, ["lr", "value", f"{result.metric} per epoch", "best epoch", "best",
                       "stopped", "time", ""]))
    print(f"  {result.why()}")
    print(f"run folder {config.out}: tune.json trials/ final/")
    return 0
