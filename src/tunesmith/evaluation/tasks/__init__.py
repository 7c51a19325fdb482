"""One object per task kind: what its gold answer is, how a backend predicts it, its metrics
and its bootstrap sampler. Each extends the task kind of the data layer (`data/tasks.py`: the
metric it is decided on, its classes, its checks). A new task is a class there, one module
here, and a line in each registry.

    task            gold                     predicted by                       decided on
    classification  the label                label scores (or generate+parse)    macro-F1
    ner             (text, type) entities    generating a JSON entity list       entity F1
    chat            the reference answer     generating; loss by teacher forcing token F1
"""

from __future__ import annotations

from tunesmith.data.tasks import TASK_KINDS
from tunesmith.evaluation.tasks.base import EvalTask, Mode, Predictions
from tunesmith.evaluation.tasks.chat import ChatTask
from tunesmith.evaluation.tasks.classification import ClassificationTask
from tunesmith.evaluation.tasks.ner import NerTask

__all__ = ["EVAL_TASKS", "EvalTask", "Mode", "Predictions", "get_task"]

EVAL_TASKS: dict[str, EvalTask] = {t.name: t for t in (ClassificationTask(), NerTask(),
                                                         ChatTask())}
assert EVAL_TASKS.keys() == TASK_KINDS.keys()


def get_task(name: str) -> EvalTask:
    """The evaluation task of `name` (the same names as `data.tasks.TASK_KINDS`)."""
    return EVAL_TASKS[name]
