"""What every evaluation task has: its predictions, and the methods a task implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tunesmith.data.examples import Example
from tunesmith.data.taskfile import TaskSpec
from tunesmith.data.tasks import TaskKind

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


class EvalTask(TaskKind):
    """A task kind (`data/tasks.py`: its metric, classes, checks) that can also be predicted
    and scored. The task classes derive from both: `ClassificationTask(Classification,
    EvalTask)`."""

    def gold(self, example: Example) -> object:
        """The gold answer of `example`, as `metrics` compares it."""
        raise NotImplementedError

    def predict(self, backend, examples: list[Example], conversations: list[list[dict]],
                spec: TaskSpec, *, mode: Mode, max_new_tokens: int | None,
                offsets: np.ndarray | None) -> Predictions:
        raise NotImplementedError

    def metrics(self, gold: list, pred: list, spec: TaskSpec) -> dict:
        raise NotImplementedError

    def sampler(self, gold: list, pred: list, spec: TaskSpec) -> Callable[[np.ndarray], float]:
        """The task metric on a resample (an index array) of the examples."""
        raise NotImplementedError

    def parse(self, text: str, spec: TaskSpec) -> tuple[object, bool]:
        """A recorded answer (another model's text) as a prediction, and whether it was
        invalid (no label, no readable entity list)."""
        raise NotImplementedError

    agreement_name: str = ""
    """What `agreement` measures, for reports."""

    def agreement(self, reference: list, pred: list,
                  spec: TaskSpec) -> Callable[[np.ndarray], float]:
        """How closely `pred` answers as `reference` (another model's predictions) does, on a
        resample of the examples: a number in [0, 1]."""
        raise NotImplementedError
