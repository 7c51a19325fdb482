"""Typed configuration: every knob of a training run in one place, with its unit and its check,
and the one vocabulary of approaches (`--method`) every command and the service share.

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

from tunesmith.data.steps import epoch_steps
from tunesmith.data.tasks import task_kind
from tunesmith.errors import UsageError
from tunesmith.hparams import DEFAULT_BETA, auto_batch_size, auto_epochs, auto_learning_rate
from tunesmith.modeling import DEFAULT_MODEL

MethodName = Literal["lora", "full", "qlora", "dpo", "full-dpo", "lora-head", "full-head",
                     "supervised"]
Method = Literal["lora", "full"]
Loss = Literal["sft", "dpo"]
Head = Literal["lm", "classifier", "token", "task"]
Precision = Literal["auto", "fp32", "bf16", "bf16-true"]
Optimizer = Literal["adamw", "adamw-8bit"]
Quantize = Literal["none", "4bit"]
Schedule = Literal["cosine", "linear", "constant"]
TrackerName = Literal["tensorboard", "mlflow", "wandb"]
Selection = Literal["stratified", "similar"]
"""How shots are chosen: one fixed, seeded, stratified set; or per input, the nearest ones."""
Instruction = Literal["own", "labels", "none"]
"""The system message of a prompt: the data set's own, one listing the labels, or none."""


# ---- approaches: one vocabulary for train, compare, curve and the service ----------------------


@dataclass(frozen=True)
class Approach:
    """What an approach name means: which weights train, what they learn, on what base."""

    name: str
    method: Method
    """`lora` (adapters, PEFT) or `full` (every weight)."""
    head: Literal["lm", "task"] = "lm"
    """`lm`: the answer as text; `task`: the head the data's task takes (`head_for`)."""
    loss: Loss = "sft"
    quantize: Quantize = "none"

    def head_for(self, task: str) -> Literal["lm", "classifier", "token"]:
        """The output head this approach trains on `task` data.

        Raises:
            UsageError: a head approach on a task without a head (chat).
        """
        if self.head == "lm":
            return "lm"
        head = task_kind(task).head
        if head is None:
            raise UsageError(f"--method {self.name}: a {task} task has no head; use lora or "
                             "full.")
        return head

    def check_prepared(self, task: str) -> None:
        """That this approach trains on a `data prepare` folder of `task` data (its chat
        examples), as `compare` and `curve` train it.

        Raises:
            UsageError: a head for a task without one, or DPO (it needs preference rows).
        """
        self.head_for(task)
        if self.loss == "dpo":
            raise UsageError(f"--method {self.name} learns from preference rows; a `data prepare` "
                             "folder holds chat examples. Train it with `tunesmith train --method "
                             f"{self.name} --train PREFERENCES.jsonl`.")


APPROACHES: dict[str, tuple[Approach, str]] = {
    "lora": (Approach("lora", "lora"), "LoRA adapters (PEFT) learn the answers as text"),
    "full": (Approach("full", "full"), "every weight learns the answers as text"),
    "qlora": (Approach("qlora", "lora", quantize="4bit"),
              "LoRA on a 4-bit base (QLoRA; needs bitsandbytes)"),
    "dpo": (Approach("dpo", "lora", loss="dpo"),
            "LoRA adapters learn which of two answers is preferred (DPO; preference rows)"),
    "full-dpo": (Approach("full-dpo", "full", loss="dpo"), "every weight learns preferences (DPO)"),
    "lora-head": (Approach("lora-head", "lora", head="task"),
                  "LoRA plus a task head: a classifier (classification) or a BIO tagger (NER)"),
    "full-head": (Approach("full-head", "full", head="task"), "every weight plus a task head"),
    "supervised": (Approach("supervised", "lora"),
                   "OpenAI's name for supervised fine-tuning: lora here"),
}
assert tuple(APPROACHES) == get_args(MethodName)
METHOD_HELP = "; ".join(f"`{name}`: {text}" for name, (_, text) in APPROACHES.items())
"""The approaches, listed once for every command's help."""


def parse_method(name: str) -> Approach:
    """The approach an approach name stands for (any of APPROACHES).

    Raises:
        UsageError: an unknown name.
    """
    entry = APPROACHES.get(name)
    if entry is None:
        raise UsageError(f"--method must be one of {', '.join(APPROACHES)}, not {name!r}")
    return entry[0]


def parse_methods(text: str) -> list[str]:
    """`lora,lora-head` -> ["lora", "lora-head"] (each checked, duplicates dropped)."""
    names = [x.strip() for x in text.split(",") if x.strip()]
    if not names:
        raise UsageError(f"--method takes a list of {', '.join(APPROACHES)}")
    for name in names:
        parse_method(name)
    return list(dict.fromkeys(names))


Shots = list[int | Literal["auto"]]


def parse_shots(text: str) -> Shots:
    """The one `--shots` grammar: comma-separated shot counts and `auto` (the prompt chosen on
    the validation split), each a prompting row: `0,5,auto` -> [0, 5, "auto"]. Numbers come out
    ascending, then `auto`, each once.

    Raises:
        UsageError: anything but non-negative integers and `auto`.
    """
    items = [x.strip() for x in str(text).split(",") if x.strip()]
    try:
        shots = [x if x == "auto" else int(x) for x in items]
    except ValueError:
        raise UsageError("--shots takes shot counts and auto, like 0,5,auto") from None
    if not shots or any(k != "auto" and k < 0 for k in shots):
        raise UsageError("--shots takes non-negative shot counts and auto, like 0,5,auto")
    numbers = sorted({int(k) for k in shots if k != "auto"})
    return numbers + (["auto"] if "auto" in shots else [])


def shots_label(shots: int | str) -> str:
    """A prompting row's name: `zero-shot`, `5-shot`, `best prompt`."""
    if shots == "auto":
        return "best prompt"
    return f"{shots}-shot" if shots else "zero-shot"


# ---- options shared by the commands that evaluate ------------------------------------------------


@dataclass(kw_only=True)
class EndpointOptions:
    """How endpoint models (`openai:NAME`) are reached: `eval`, `compare` and the studies."""

    base_url: str | None = field(default=None, metadata={"metavar": "URL"})
    """OpenAI-compatible API URL, up to /v1 (default: $OPENAI_BASE_URL, else OpenAI's)."""
    api_key_env: str | None = field(default=None, metadata={"metavar": "VAR"})
    """Environment variable holding the API key (default: OPENAI_API_KEY); the key is never
    printed or stored."""
    concurrency: int = field(default=8, metadata={"metavar": "N", "low": 1, "high": 256})
    """Requests in flight at once."""
    max_retries: int = field(default=4, metadata={"metavar": "N", "low": 0, "high": 20})
    """Retries of a request the endpoint answered with 429 or 5xx, or dropped (with backoff,
    honouring Retry-After)."""
    use_cache: bool = field(default=True, metadata={"flag": "--no-cache"})
    """Ask the endpoint again instead of reusing cached responses
    ($TUNESMITH_HOME/cache/endpoints)."""

    ENDPOINT_FIELDS = ("base_url", "api_key_env", "concurrency", "max_retries", "use_cache")


@dataclass(kw_only=True)
class JudgeOptions:
    """A model as judge of open-ended (chat) answers: `eval`, `compare` (evaluation/judge.py)."""

    judge: str | None = field(default=None, metadata={"metavar": "SPEC"})
    """Judge chat answers with this model (openai:NAME behind --base-url, or a model loaded
    here): each answer against the baseline's, in both orders."""
    judge_against: str | None = field(default=None, metadata={"metavar": "APPROACH"})
    """The baseline answers: another row's (`compare`: its name, or `incumbent`); default: the
    reference answers of the test split."""
    judge_mode: Literal["pairwise", "score"] = "pairwise"
    """pairwise: A / B / tie against the baseline; score: each answer graded 1-10 alone."""
    criteria: str | None = field(default=None, metadata={"metavar": "FILE"})
    """A short rubric the judge is given with the task."""
    judge_max_examples: int = field(default=100, metadata={"metavar": "N", "low": 1})
    """Test inputs judged (bounds the judge's cost: about 2 calls per approach per input and
    up to 6 per input for the probes)."""
    judge_min_probe: float = field(default=0.9, metadata={"metavar": "P"})
    """The share of probes (the reference against degraded copies) the judge must get right to
    be trusted."""

    JUDGE_FIELDS = ("judge", "judge_against", "judge_mode", "criteria", "judge_max_examples",
                    "judge_min_probe")

    def __post_init__(self) -> None:
        if not 0 < self.judge_min_probe <= 1:
            raise UsageError("--judge-min-probe must be in (0, 1].")
        if self.criteria and not Path(self.criteria).is_file():
            raise UsageError(f"--criteria {self.criteria}: no such file.")
        if self.judge_mode not in ("pairwise", "score"):
            raise UsageError("--judge-mode must be pairwise or score.")


SEARCH_EXAMPLES = 200
"""Validation examples each prompt candidate is scored on, by default: enough to rank prompts that
differ by a few points, and a bounded cost (about 12 evaluations) on large validation splits."""


@dataclass(kw_only=True)
class EvalConfig(EndpointOptions):
    """`tunesmith eval`: one model on a task's test data, under one or more prompts."""

    model: str = DEFAULT_MODEL
    """Model spec, a run folder (its final/), or openai:NAME."""
    data: str = field(default="", metadata={"metavar": "FILE|DIR", "required": True})
    """A prepared folder (its test.jsonl) or a data file."""
    shots: Shots = field(default_factory=lambda: [0],
                         metadata={"parse": parse_shots, "metavar": "K[,K...|auto]"})
    """Few-shot examples from the train split, one result per value; auto: the prompt
    (instruction, shots, selection, calibration) chosen on the validation split."""
    shot_selection: Selection = "stratified"
    """stratified: one fixed, seeded set covering the labels; similar: the training examples
    nearest to each input (TF-IDF)."""
    instruction: Instruction = "own"
    """System message: the data set's own, one listing the labels, or none."""
    calibrate: bool = False
    """Contextual calibration of label scores (Zhao et al. 2021)."""
    seed: int = field(default=0, metadata={"low": 0, "high": 2**32 - 1})
    """Shot selection seed."""
    search_examples: int = field(default=SEARCH_EXAMPLES, metadata={"metavar": "N", "low": 1})
    """--shots auto: validation examples each prompt candidate is scored on."""
    mode: Literal["score", "generate"] = "score"
    """Classification: label log-likelihood (endpoints: first-token logprobs) or
    generate-and-parse."""
    max_examples: int | None = field(default=None, metadata={"metavar": "N", "low": 1})
    """Evaluate only the first N examples."""
    batch_size: int = field(default=16, metadata={"metavar": "N", "low": 1})
    """Examples per forward pass."""


# ---- a training run -----------------------------------------------------------------------------


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
    method: MethodName = "lora"
    """The approach (resolved to the weights that train, their loss, head and base): `lora`
    trains low-rank adapters (PEFT); `full` every weight; `qlora` = `lora` with `--quantize
    4bit`; `dpo` and `full-dpo` = `--loss dpo`; `lora-head` and `full-head` = `--head task`;
    `supervised` (OpenAI's name) = `lora`."""
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
    (NER); `task` the head the data's task takes (task.json beside the training file)."""
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
        approach = APPROACHES.get(self.method, (None,))[0]
        if approach is None:
            problems.append(f"--method must be one of {', '.join(APPROACHES)}, not "
                            f"{self.method!r}")
        else:  # a name stands for the weights that train, the loss, the base and the head
            self.method = approach.method
            if approach.loss != "sft":
                self.loss = approach.loss
            if approach.quantize != "none":
                self.quantize = approach.quantize
            if approach.head != "lm" and self.head == "lm":
                self.head = approach.head
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
        if self.head not in get_args(Head):
            problems.append("--head must be lm, classifier, token or task")
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
