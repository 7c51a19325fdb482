"""`audit_file`: every audit of a data file in one call, returned as an `AuditReport`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.audit.duplicates import DEFAULT_SIMILARITY, NearDuplicate, Text, find_near_duplicates
from tunesmith.audit.embeddings import hidden_state_features
from tunesmith.audit.entities import EntityConflict, find_entity_conflicts
from tunesmith.audit.labels import LabelError, find_label_errors
from tunesmith.audit.outliers import Outlier, find_outliers
from tunesmith.audit.text import input_text, words
from tunesmith.data.answers import label_of, parse_entities
from tunesmith.data.examples import Dataset, Entity, Task
from tunesmith.data.formats import read_dataset
from tunesmith.data.taskfile import read_task
from tunesmith.data.tasks import task_kind
from tunesmith.data.validate import infer_task


@dataclass
class AuditReport:
    file: str
    format: str
    task: Task
    examples: int
    label_errors: list[LabelError] = field(default_factory=list)
    entity_conflicts: list[EntityConflict] = field(default_factory=list)
    near_duplicates: list[NearDuplicate] = field(default_factory=list)
    outliers: list[Outlier] = field(default_factory=list)
    train_file: str | None = None
    skipped_rows: int = 0
    """Rows with errors (`data check` lists them), left out of the audit."""
    methods: dict = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def leaks(self) -> list[NearDuplicate]:
        """Near-duplicates of training examples (with `train_file`)."""
        return [d for d in self.near_duplicates if d.other_file != self.file]

    def to_dict(self) -> dict:
        return {
            "file": self.file, "format": self.format, "task": self.task,
            "examples": self.examples, "skipped_rows": self.skipped_rows,
            "train_file": self.train_file,
            "label_errors": [e.to_dict() for e in self.label_errors],
            "entity_conflicts": [c.to_dict() for c in self.entity_conflicts],
            "near_duplicates": [d.to_dict() for d in self.near_duplicates],
            "outliers": [o.to_dict() for o in self.outliers],
            "methods": self.methods, "seconds": self.seconds,
        }


def _texts(data: Dataset) -> list[Text]:
    return [Text(e.line, words(input_text(e)), label_of(e)) for e in data.examples]


def audit_file(
    path: str | Path, *, train_path: str | Path | None = None, fmt: str | None = None,
    text_field: str = "text", label_field: str = "label", model: str | None = None,
    similarity: float = DEFAULT_SIMILARITY, folds: int = 5, seed: int = 0,
    progress: Callable[[str], None] = lambda message: None,
) -> AuditReport:
    """Audit a data file.

    Args:
        path: the file to audit (any format `data check` reads).
        train_path: a training file: near-duplicates of its examples in `path` are leaks.
        model: a model spec whose hidden states add a second label-error probe (one forward pass
            per example); None uses TF-IDF alone.
        similarity: near-duplicate threshold (see `audit.duplicates`).

    Raises:
        UnusableInputError: a file cannot be used at all (exit code 2).
    """
    data = read_dataset(path, fmt, text_field=text_field, label_field=label_field)
    train = (read_dataset(train_path, fmt, text_field=text_field, label_field=label_field)
             if train_path is not None else None)
    task = infer_task(data, read_task(Path(path).parent))
    report = AuditReport(str(path), data.format, task, len(data.examples),
                         train_file=None if train_path is None else str(train_path),
                         skipped_rows=data.rows - len(data.examples))
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        report.seconds[name] = round(now - clock, 2)
        clock = now

    examples = data.examples
    kind = task_kind(task)
    if kind.labelled and examples:
        embeddings = None
        if model is not None:
            progress(f"hidden states of {len(examples):,} prompts ({model})")
            embeddings = hidden_state_features(examples, model, progress)
            lap("hidden_states")
        report.label_errors, report.methods["label_errors"] = find_label_errors(
            [input_text(e) for e in examples], [label_of(e) for e in examples],
            [e.line for e in examples], embeddings=embeddings, folds=folds, seed=seed,
            progress=progress)
        if model is not None:
            report.methods["label_errors"]["model"] = model
        lap("label_errors")
    elif kind.entities:
        spans = [(e.line, ent.text, ent.type) for e in examples
                 for ent in (e.entities if e.entities is not None else
                             _entities(label_of(e)))]
        report.entity_conflicts = find_entity_conflicts(spans)
        lap("entity_conflicts")
    progress("near-duplicates")
    texts = _texts(data)
    report.near_duplicates = find_near_duplicates(texts, str(path), threshold=similarity,
                                                  seed=seed)
    if train is not None:
        report.near_duplicates += find_near_duplicates(texts, str(path), _texts(train),
                                                       str(train_path), similarity, seed)
    report.methods["near_duplicates"] = {"similarity": similarity, "measure":
                                         "1 - character edit distance / longer length, after "
                                         "case, whitespace and punctuation are removed"}
    lap("near_duplicates")
    report.outliers = find_outliers([(e.line, input_text(e)) for e in examples], "input")
    if kind.open_ended:
        report.outliers += find_outliers([(e.line, label_of(e)) for e in examples], "answer")
        report.outliers.sort(key=lambda o: o.line)
    lap("outliers")
    return report


def _entities(answer: str):
    return [Entity(x["text"], x["type"]) for x in parse_entities(answer) or []]
