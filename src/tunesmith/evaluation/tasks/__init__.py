"""One object per task kind: what its gold answer is, how a backend predicts it, its metrics
and its bootstrap sampler. A new task is one module here plus a line in `TASKS`.

    task            gold                     predicted by                       decided on
    classification  the label                label scores (or generate+parse)    macro-F1
    ner             (text, type) entities    generating a JSON entity list       entity F1
    chat            the reference answer     generating; loss by teacher forcing token F1
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from tunesmith.data.examples import Example
from tunesmith.data.taskfile import TaskSpec

Mode = Literal["score", "generate"]


@dataclass
class Predictions:
    values: list
    """Per example: a label (None: invalid), an entity list, or a text."""
    invalid: int
    """Answers that named no label, held no readable entity list, or were cut off (chat)."""
    prompt_tokens: list[int]
    completion_tokens: list[int]
    mode: Mode = "generate"
    """How they were made: `score` (label scores) or `generate`."""
    metrics: dict = field(default_factory=dict)
    """Extra metrics the prediction itself measured (chat: loss, perplexity)."""
    notes: list[str] = field(default_factory=list)
    """What a reader should know (labels decided by generation where scores could not)."""


class EvalTask(Protocol):
    name: str
    metric: str
    """The metric decisions are made on (a key of `metrics()`)."""

    def gold(self, example: Example) -> object: ...

    def predict(self, backend, examples: list[Example], conversations: list[list[dict]],
                spec: TaskSpec, *, mode: Mode, max_new_tokens: int | None,
                offsets: np.ndarray | None) -> Predictions: ...

    def metrics(self, gold: list, pred: list, spec: TaskSpec) -> dict: ...

    def sampler(self, gold: list, pred: list, spec: TaskSpec) -> Callable[[np.ndarray], float]: ...


def get_task(name: str) -> EvalTask:
    from tunesmith.evaluation.tasks.chat import ChatTask
    from tunesmith.evaluation.tasks.classification import ClassificationTask
    from tunesmith.evaluation.tasks.ner import NerTask

    tasks: dict[str, EvalTask] = {"classification": ClassificationTask(), "ner": NerTask(),
                                  "chat": ChatTask()}
    return tasks[name]


TASK_METRIC = {"classification": "macro_f1", "ner": "f1", "chat": "token_f1"}
"""The metric each task is decided on (each task's `metric`)."""
METRIC_NAMES = {"macro_f1": "macro-F1", "f1": "entity F1", "token_f1": "token F1",
                "accuracy": "accuracy"}
