"""`check_file`: every check of a data file in one call, returned as a `CheckReport`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tunesmith.data.examples import Example, Task
from tunesmith.data.formats import FORMAT_TASK, read_dataset
from tunesmith.data.issues import Issue
from tunesmith.data.render import supports_tools
from tunesmith.data.taskfile import TaskSpec, read_task
from tunesmith.data.tasks import task_kind
from tunesmith.data.tokens import TokenStats, count_tokens, token_stats
from tunesmith.data.validate import (
    check_against_train,
    check_dataset,
    check_lengths,
    infer_task,
)
from tunesmith.hparams import auto_epochs, billed_tokens
from tunesmith.pricing import PriceTable

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass
class TrainingEstimate:
    """What fine-tuning this file on OpenAI would bill."""

    epochs: int
    """OpenAI's n_epochs="auto" for this many examples."""
    billed_tokens: int
    """Tokens x epochs, counted with the checked model's tokenizer (OpenAI's differs slightly)."""
    costs: dict[str, float]
    """US dollars per OpenAI model."""
    prices_as_of: str


@dataclass
class CheckReport:
    path: str
    format: str
    task: Task
    rows: int
    """Rows read (lines with content, CoNLL sentences)."""
    examples: int
    """Valid examples."""
    issues: list[Issue]
    labels: dict[str, int] = field(default_factory=dict)
    """Classification: examples per label. NER: entities per type ('' = examples with none)."""
    model: str | None = None
    tokens: TokenStats | None = None
    estimate: TrainingEstimate | None = None
    train_path: str | None = None

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {
            "file": self.path, "format": self.format, "task": self.task, "rows": self.rows,
            "examples": self.examples, "valid": self.ok, "errors": len(self.errors),
            "warnings": len(self.warnings), "issues": [i.to_dict() for i in self.issues],
            "labels": self.labels, "model": self.model,
            "tokens": self.tokens.to_dict() if self.tokens else None,
            "training_estimate": None if self.estimate is None else {
                "epochs": self.estimate.epochs, "billed_tokens": self.estimate.billed_tokens,
                "cost_usd": self.estimate.costs, "prices_as_of": self.estimate.prices_as_of},
            "train_file": self.train_path,
        }


def check_file(
    path: str | Path,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    model: str | None = None,
    max_seq_len: int = 2048,
    fmt: str | None = None,
    text_field: str = "text",
    label_field: str = "label",
    train_path: str | Path | None = None,
    prices: PriceTable | None = None,
) -> CheckReport:
    """Run every check on a data file.

    Args:
        path: the file to check.
        tokenizer: for token statistics, the training estimate and whether the chat template
            renders the file's tools (`tools_unsupported` per line); None skips them.
        model: the model's name, recorded in the report.
        max_seq_len: examples longer than this many tokens are reported as truncated.
        fmt: the file's format (see `FORMATS`); None detects it.
        text_field, label_field: field names of classification files.
        train_path: the training file, when `path` is a validation or test split: adds the
            shared-example and unseen-label checks.
        prices: the price table for the training estimate; None skips the prices.

    Raises:
        UnusableInputError: either file cannot be used at all (exit code 2).
    """
    data = read_dataset(path, fmt, text_field=text_field, label_field=label_field)
    spec: TaskSpec | None = read_task(Path(path).parent)
    task = infer_task(data, spec)
    issues = list(data.issues) + check_dataset(data, task, spec)
    if train_path is not None and not _same_file(path, train_path):
        train = read_dataset(train_path, fmt, text_field=text_field, label_field=label_field)
        issues += check_against_train(data, train, task)
    kind = task_kind(task)
    labels = kind.class_counts(data.examples)
    report = CheckReport(str(path), data.format, task, data.rows, len(data.examples), issues,
                         labels, model, train_path=None if train_path is None else str(train_path))
    if tokenizer is not None:
        # Count what training will see: task.json's instruction, or the one `data prepare` would
        # write for a raw classification/NER file.
        if spec is not None:
            system = spec.system
        elif data.format in FORMAT_TASK and not kind.open_ended:
            system = kind.default_system(sorted(k for k in labels if k))
        else:
            system = None
        examples = [e.with_system(system) for e in data.examples]
        counts = count_tokens(examples, tokenizer)
        report.tokens = token_stats(counts, max_seq_len)
        report.issues += check_lengths(data, counts.total, max_seq_len)
        report.issues += _tools_unsupported(data.examples, tokenizer, model)
        epochs = auto_epochs(len(data.examples))
        billed = billed_tokens(counts.total, epochs)
        costs = ({name: round(billed / 1e6 * p.training, 4) for name, p in prices.openai.items()}
                 if prices else {})
        report.estimate = TrainingEstimate(epochs, billed, costs, prices.as_of if prices else "")
    report.issues.sort(key=lambda i: (i.line or 0, i.severity != "error"))
    return report


def _tools_unsupported(examples: list[Example], tokenizer: PreTrainedTokenizerBase,
                       model: str | None) -> list[Issue]:
    """An error per example that uses tools, when the model's template cannot render them."""
    using = [e for e in examples if e.uses_tools]
    if not using or supports_tools(tokenizer):
        return []
    name = model or getattr(tokenizer, "name_or_path", "") or "the model"
    return [Issue("tools_unsupported", f"model {name}'s chat template cannot render tool calls; "
                  "use a model whose template supports tools (e.g. Qwen2.5-Instruct) or drop "
                  "the tools.", e.line) for e in using]


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).samefile(b)
    except OSError:
        return False
