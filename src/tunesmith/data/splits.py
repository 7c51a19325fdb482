"""Loading a prepared task folder (or one file of it) for evaluation and comparison."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunesmith.data.examples import Dataset, Example
from tunesmith.data.formats import read_dataset
from tunesmith.data.taskfile import TaskSpec, read_task
from tunesmith.data.tasks import task_kind
from tunesmith.data.validate import infer_task
from tunesmith.errors import InvalidDataError, UsageError


@dataclass
class TaskData:
    spec: TaskSpec
    folder: Path
    test: list[Example]
    """The examples to evaluate on: DIR/test.jsonl, or the FILE given."""
    train: list[Example]
    """Shots come from here (DIR/train.jsonl or the FILE's sibling); may be empty."""
    test_path: Path
    train_path: Path | None


def read_valid(path: Path) -> Dataset:
    """A data file that has no errors (evaluation on broken data means nothing).

    Raises:
        InvalidDataError: the file has errors.
    """
    data = read_dataset(path)
    if data.errors:
        raise InvalidDataError(path, data.errors, f"{len(data.errors)} errors; run `tunesmith "
                               "data check` on it for details.")
    return data


def load_task_data(path: str | Path) -> TaskData:
    """A `data prepare` folder (its test split; shots from its train split) or a single file
    (evaluated whole; shots from a train.jsonl beside it, if any).

    Raises:
        UsageError: a folder without test.jsonl.
    """
    path = Path(path)
    if path.is_dir():
        test_path = path / "test.jsonl"
        if not test_path.is_file() or test_path.stat().st_size == 0:
            raise UsageError(f"{path}: no test.jsonl with examples (make one with `tunesmith data "
                             "prepare ... --test 0.1`).")
        folder = path
    else:
        test_path, folder = path, path.parent
    data = read_valid(test_path)
    test = data.examples
    train_path = folder / "train.jsonl"
    train = (read_valid(train_path).examples if train_path.is_file() and train_path != test_path
             else [])
    spec = read_task(folder)
    if spec is None:  # a loose file: infer what task.json would have said
        task = infer_task(data)
        everything = train + test
        kind = task_kind(task)
        labels = kind.classes(everything)
        system = next((e.messages[0].content for e in test if e.messages[0].role == "system"),
                      None) or kind.default_system(labels)
        spec = TaskSpec(task, labels, system)
    return TaskData(spec, folder, test, train, test_path,
                    train_path if train_path.is_file() else None)
