"""Typed configuration of a training run: every knob in one place, with its unit and its check.

`TrainConfig` holds what the user asked for ("auto" allowed); `resolve()` turns it into concrete
numbers for a data set of a given size. The resolved config is what `RUN/config.yaml` records,
so a run folder always says exactly how it was trained.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from tunesmith.errors import UsageError
from tunesmith.hparams import DEFAULT_BETA, auto_batch_size, auto_epochs, auto_learning_rate
from tunesmith.modeling import DEFAULT_MODEL

Method = Literal["lora", "full", "qlora", "dpo", "full-dpo"]
Loss = Literal["sft", "dpo"]
Head = Literal["lm", "classifier", "token"]
Precision = Literal["auto", "fp32", "bf16", "bf16-true"]
Optimizer = Literal["adamw", "adamw-8bit"]
Quantize = Literal["none", "4bit"]
Schedule = Literal["cosine", "linear", "constant"]
TrackerName = Literal["tensorboard", "mlflow", "wandb"]


@dataclass
class TrainConfig:
    """A fine-tuning run. Field names match `config.yaml` keys; flags are `--field-name`."""

    train_file: str = ""
    """Training data (chat JSONL, or any format `data check` reads)."""
    val_file: str | None = None
    """Validation data; None trains without validation."""
    out: str = "runs/run"
    """The run folder."""
    model: str = DEFAULT_MODEL
    """Base model spec (alias, .gguf, local folder or hub id)."""
    method: Method = "lora"
    """`lora` trains low-rank adapters (PEFT); `full` trains every weight; `qlora` trains LoRA
    adapters on a 4-bit base (the same as `lora` with `--quantize 4bit`); `dpo` (LoRA) and
    `full-dpo` learn preferences from a preference file (DPO; the same as `--loss dpo`)."""
    quantize: Quantize = "none"
    """`4bit` holds the frozen base weights of a LoRA run in 4 bits (NF4 with double
    quantization, QLoRA; needs bitsandbytes): a Llama-3-8B base takes ~5.7 GB, not 16 GB."""
    loss: Loss = "sft"
    """`sft` learns the answers (supervised); `dpo` learns which of two answers is preferred
    (Direct Preference Optimization, OpenAI's `dpo` method) from preference-format data."""
    beta: float | Literal["auto"] = "auto"
    """DPO's beta: how far the model may move from where it started (the reference) to
    express the preferences; higher keeps it closer. auto = 0.1 (OpenAI's and TRL's default)."""
    head: Head = "lm"
    """What the model learns to output: `lm` the answer as text (any task); `classifier` one
    label per example from the last prompt token (classification); `token` a BIO tag per word
    (NER)."""
    epochs: int | Literal["auto"] = "auto"
    """Passes over the training data; auto follows OpenAI's rule (3, scaled for tiny/huge sets)."""
    batch_size: int | Literal["auto"] = "auto"
    """Examples per optimizer step (OpenAI's meaning), whatever the packing."""
    batch_tokens: int | Literal["auto"] = 0
    """Tokens per optimizer step instead (whole examples up to this many tokens; 0: count
    examples with --batch-size). Steady work per step on a GPU whatever the example lengths.
    auto: as many as the GPU's memory holds in one pass (measured; on CPU --micro-batch-tokens),
    at most 1/16 of an epoch's tokens."""
    lr: float | Literal["auto"] = "auto"
    """Peak learning rate; auto = 2e-4 (LoRA) or 2e-5 (full) at batch 8, 5x that for a task
    head, scaled by sqrt(batch/8)."""
    lr_multiplier: float = 1.0
    """Scales the learning rate (OpenAI's `learning_rate_multiplier`)."""
    max_seq_len: int = 1024
    """Tokens per example; longer examples are truncated on the right (and reported)."""
    pack: bool = True
    """Pack each step's examples end to end, without padding (attention kept inside each example)."""
    micro_batch_tokens: int = 4096
    """Tokens per forward pass (padding included); a step larger than this accumulates gradients."""
    schedule: Schedule = "cosine"
    """Learning-rate decay after warm-up."""
    warmup_ratio: float = 0.05
    """Fraction of the optimizer steps spent warming the learning rate up from 0."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping threshold (global L2 norm); 0 disables clipping."""
    lora_r: int = 16
    """LoRA rank: the adapters' inner dimension."""
    lora_alpha: int = 32
    """LoRA scaling numerator: the adapters' output is scaled by alpha / r."""
    lora_dropout: float = 0.0
    """Dropout on the adapters' input. 0 by default (as torchtune's and Unsloth's recipes): with
    dropout PEFT copies every adapted layer's input, which costs ~35% of a CPU training step."""
    lora_targets: str = "all-linear"
    """Comma-separated module names, or `all-linear` (every linear layer but the output head)."""
    precision: Precision = "auto"
    """`auto`: bf16 autocast on a GPU that supports it and on CPUs with AVX512-BF16/AMX, else
    fp32. `bf16`: autocast, trained weights and AdamW state in fp32 (16 bytes a trained
    parameter). `bf16-true`: weights, gradients and AdamW state all in bf16 (8 bytes a trained
    parameter: full fine-tuning of a 7B model fits one 80 GB GPU) at the price of updates
    smaller than bf16's resolution being rounded away."""
    optimizer: Optimizer = "adamw"
    """`adamw` (fp32 moments: 8 bytes of state a trained parameter) or `adamw-8bit`
    (bitsandbytes' block-wise 8-bit moments: 2 bytes; full fine-tuning of an 8B model then
    needs 16 GB of optimizer state instead of 64 GB)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, ~30% more compute."""
    eval_every: int = 0
    """Steps between evaluations on a small validation batch; 0 = about 10 per run."""
    eval_examples: int = 32
    """Size of that small validation batch (the full validation set is used at each epoch end)."""
    seed: int = 0
    """Seeds the model's new weights, dropout and the data order (0 to 2**32 - 1)."""
    device: str = "auto"
    """`auto`, `cpu`, `cuda`, `cuda:1`, ..."""
    distributed: Literal["ddp", "fsdp"] = "ddp"
    """Under torchrun: `ddp` keeps a whole copy of the model on every process; `fsdp` shards
    weights, gradients and AdamW state over the processes (FSDP2, per decoder layer)."""
    quiet: bool = False
    """No progress bar (logs and metrics files only)."""
    resume: bool = False
    """Continue the run in `out` from its newest complete checkpoint."""
    save_every_steps: int = 0
    """Also checkpoint inside an epoch every this many optimizer steps (0: only by time)."""
    save_every_minutes: float = 30.0
    """Also checkpoint inside an epoch once this many minutes passed since the last checkpoint
    (a crash late in a long epoch then loses at most this much); 0 turns it off."""
    tune: bool = False
    """Choose the learning rate (the auto rule x 0.5, 1, 2, 4) and the epochs (early stopping
    on the validation metric) on the validation split, one short seeded trial each; final/ is
    the best trial's best epoch."""
    tune_budget_minutes: float = 60.0
    """Wall-clock budget of --tune: no trial starts, and a running one stops, past it."""
    tune_examples: int = 200
    """Validation examples the task metric is measured on after each epoch of a trial."""
    report_to: list[TrackerName] = field(default_factory=list)
    """Also send the metrics to these trackers (comma-separated): `tensorboard` (RUN/tensorboard),
    `mlflow` (RUN/mlflow.db unless $MLFLOW_TRACKING_URI is set), `wandb` (offline in RUN/wandb
    unless $WANDB_API_KEY or $WANDB_MODE is set). Needs `pip install 'tunesmith[tracking]'`."""
    wandb_project: str | None = None
    """W&B project (default: $WANDB_PROJECT, else `tunesmith`)."""
    wandb_entity: str | None = None
    """W&B team or user (default: the API key's)."""
    wandb_name: str | None = None
    """W&B run name (default: the run folder's name)."""
    wandb_tags: list[str] = field(default_factory=list)
    """W&B run tags (comma-separated)."""

    def __post_init__(self) -> None:
        problems = []
        if self.method in ("dpo", "full-dpo"):  # shorthand: the weights that train + the loss
            self.method, self.loss = ("lora" if self.method == "dpo" else "full"), "dpo"
        if self.method == "qlora":  # shorthand: LoRA on a 4-bit base
            self.method, self.quantize = "lora", "4bit"
        if self.method not in ("lora", "full"):
            problems.append("--method must be lora, full, qlora, dpo or full-dpo, not "
                            f"{self.method!r}")
        if self.quantize not in ("none", "4bit"):
            problems.append("--quantize must be none or 4bit")
        elif self.quantize != "none" and self.method != "lora":
            problems.append("--quantize 4bit freezes the base weights: it trains LoRA adapters "
                            "(--method lora, dpo or qlora), not --method full")
        if self.optimizer not in ("adamw", "adamw-8bit"):
            problems.append("--optimizer must be adamw or adamw-8bit")
        if self.loss not in ("sft", "dpo"):
            problems.append(f"--loss must be sft or dpo, not {self.loss!r}")
        if self.loss == "dpo" and self.head != "lm":
            problems.append("DPO trains the language-model head; it cannot use --head")
        if self.beta != "auto" and (not isinstance(self.beta, (int, float))
                                    or not 0 < self.beta <= 100):
            problems.append("--beta must be 'auto' or a number in (0, 100]")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if value != "auto" and (not isinstance(value, int) or value < 1):
                problems.append(f"--{name.replace('_', '-')} must be 'auto' or a positive integer")
        if self.lr != "auto" and (not isinstance(self.lr, (int, float)) or not 0 < self.lr < 1):
            problems.append("--lr must be 'auto' or a number between 0 and 1")
        if not 0 < self.lr_multiplier <= 100:
            problems.append("the learning-rate multiplier must be in (0, 100]")
        if self.max_seq_len < 16:
            problems.append("--max-seq-len must be at least 16 tokens")
        if self.micro_batch_tokens < self.max_seq_len:
            problems.append(f"--micro-batch-tokens ({self.micro_batch_tokens}) must be at least "
                            f"--max-seq-len ({self.max_seq_len})")
        if not 0 <= self.warmup_ratio < 1:
            problems.append("--warmup-ratio must be in [0, 1)")
        for name in ("weight_decay", "max_grad_norm"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value < float("inf")):
                problems.append(f"--{name.replace('_', '-')} must be a non-negative number")
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2**32):
            problems.append("--seed must be an integer from 0 to 4294967295")
        if not (0 < self.tune_budget_minutes < float("inf")) or self.tune_examples < 1:
            problems.append("--tune-budget-minutes must be positive and --tune-examples >= 1")
        if self.save_every_steps < 0 or not 0 <= self.save_every_minutes < float("inf"):
            problems.append("--save-every-steps and --save-every-minutes must be >= 0")
        if self.batch_tokens != "auto" and (not isinstance(self.batch_tokens, int)
                                            or self.batch_tokens < 0):
            problems.append("--batch-tokens must be 'auto' or a non-negative integer")
        if self.batch_tokens == "auto" and self.distributed == "fsdp":
            problems.append("--batch-tokens auto measures the passes of one process: give "
                            "--distributed fsdp a number")
        if self.eval_every < 0 or self.eval_examples < 1:
            problems.append("--eval-every must be >= 0 and --eval-examples >= 1")
        if self.lora_r < 1 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1:
            problems.append("--lora-r must be >= 1, --lora-alpha > 0, --lora-dropout in [0, 1)")
        if self.head not in ("lm", "classifier", "token"):
            problems.append("--head must be lm, classifier or token")
        if self.precision not in ("auto", "fp32", "bf16", "bf16-true"):
            problems.append("--precision must be auto, fp32, bf16 or bf16-true")
        if self.distributed not in ("ddp", "fsdp"):
            problems.append("--distributed must be ddp or fsdp")
        if self.schedule not in ("cosine", "linear", "constant"):
            problems.append("--schedule must be cosine, linear or constant")
        if not (isinstance(self.report_to, list)
                and set(self.report_to) <= set(get_args(TrackerName))):
            problems.append("--report-to must list tensorboard, mlflow or wandb (comma-separated)")
        if problems:
            raise UsageError("; ".join(problems) + ".")

    def resolve(self, n_train: int, lengths: list[int] | None = None,
                batch_tokens: int | None = None) -> ResolvedConfig:
        """Concrete values for a training set of `n_train` examples (of `lengths` tokens, which
        --batch-tokens needs); `batch_tokens`: what --batch-tokens auto measured (a step is then
        one pass of that many tokens)."""
        epochs = auto_epochs(n_train) if self.epochs == "auto" else int(self.epochs)
        micro = self.micro_batch_tokens
        if self.batch_tokens == "auto":
            if batch_tokens is None:
                raise ValueError("--batch-tokens auto: resolve() needs the measured tokens")
            micro = max(batch_tokens, self.max_seq_len)  # a step is one pass
        else:
            batch_tokens = self.batch_tokens
        if batch_tokens and lengths:
            from tunesmith.training.steps import epoch_steps

            per_epoch = [len(epoch_steps(lengths, self.seed, e, 1, batch_tokens))
                         for e in range(epochs)]
            batch = max(1, round(n_train / (sum(per_epoch) / epochs)))  # the mean, for the lr
        else:
            batch = auto_batch_size(n_train) if self.batch_size == "auto" else int(self.batch_size)
            batch = min(batch, max(n_train, 1))
            per_epoch = [-(-n_train // batch)] * epochs
        lr = (auto_learning_rate(self.method, batch, self.head, self.loss) if self.lr == "auto"
              else float(self.lr))
        lr *= self.lr_multiplier
        steps_per_epoch = per_epoch[0] if per_epoch else 0
        total = sum(per_epoch)
        auto = [k for k in ("epochs", "batch_size", "batch_tokens", "lr")
                + (("beta",) if self.loss == "dpo" else ()) if getattr(self, k) == "auto"]
        return ResolvedConfig(
            **{**dataclasses.asdict(self), "epochs": epochs, "batch_size": batch, "lr": lr,
               "batch_tokens": batch_tokens or 0, "micro_batch_tokens": micro,
               "beta": (DEFAULT_BETA if self.beta == "auto" else float(self.beta))
               if self.loss == "dpo" else self.beta},
            n_train=n_train, steps_per_epoch=steps_per_epoch, total_steps=total,
            warmup_steps=round(total * self.warmup_ratio),
            eval_every_steps=self.eval_every or max(1, total // 10), auto=auto)


@dataclass
class ResolvedConfig(TrainConfig):
    """A `TrainConfig` with every "auto" replaced and the derived step counts."""

    n_train: int = 0
    """Training examples after dropping those with no trainable token."""
    steps_per_epoch: int = 0
    total_steps: int = 0
    warmup_steps: int = 0
    eval_every_steps: int = 0
    auto: list[str] = field(default_factory=list)
    """Which fields were "auto" before resolving."""

    RUN_DEFINING = ("train_file", "val_file", "model", "method", "quantize", "optimizer", "loss",
                    "beta", "head", "epochs", "batch_size", "batch_tokens", "lr", "max_seq_len",
                    "pack", "schedule", "warmup_ratio", "weight_decay",
                    "max_grad_norm", "lora_r", "lora_alpha", "lora_dropout", "lora_targets",
                    "seed", "n_train")
    """Fields a resumed run must share with the run it continues."""

    def to_yaml(self) -> str:
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)


def load_config(path: str | Path) -> dict[str, Any]:
    """A saved `config.yaml` as a dict."""
    return yaml.safe_load(Path(path).read_text("utf-8")) or {}
