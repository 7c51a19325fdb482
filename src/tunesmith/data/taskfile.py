"""`task.json`, written by `data prepare` beside the splits: what the task is and its label set.

    {"task": "classification", "labels": ["billing", "outage"], "system": "Route the message..."}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tunesmith.atomic import write_text
from tunesmith.data.examples import TASKS, Task
from tunesmith.errors import UnusableInputError

TASK_FILE = "task.json"


@dataclass
class TaskSpec:
    task: Task
    labels: list[str] = field(default_factory=list)
    """Classification: the label set. NER: the entity types. Chat: empty."""
    system: str = ""
    """The system instruction every example starts with ('' for none)."""

    def to_dict(self) -> dict:
        return asdict(self)


def read_task(folder: str | Path) -> TaskSpec | None:
    """The folder's task.json, or None when there is none.

    Raises:
        UnusableInputError: task.json exists but is broken.
    """
    path = Path(folder) / TASK_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise UnusableInputError(path, f"not readable JSON: {e}") from e
    if not isinstance(raw, dict) or raw.get("task") not in TASKS:
        raise UnusableInputError(path, f"'task' must be one of {', '.join(TASKS)}.", field="task")
    labels = raw.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise UnusableInputError(path, "'labels' must be a list of strings.", field="labels")
    system = raw.get("system") or ""
    if not isinstance(system, str):
        raise UnusableInputError(path, "'system' must be a string.", field="system")
    return TaskSpec(raw["task"], labels, system)


def write_task(folder: str | Path, spec: TaskSpec) -> None:
    write_text(Path(folder) / TASK_FILE, json.dumps(spec.to_dict(), indent=2, ensure_ascii=False) + "\n")
