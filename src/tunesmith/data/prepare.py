"""`prepare`: turn a data file into chat-format train/validation/test splits plus `task.json`.

    support.csv (text,label)  --task classification
      -> DIR/train.jsonl       {"messages": [system, user text, assistant label]}  (80%)
         DIR/validation.jsonl  (10%)   DIR/test.jsonl (10%)   stratified by label, seeded
         DIR/task.json         {"task": "classification", "labels": [...], "system": "..."}

Exact duplicates are dropped and an input that appears twice with different answers keeps its
first answer, so no example can sit in two splits.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.atomic import atomic_open
from tunesmith.data.answers import label_of, parse_entities
from tunesmith.data.examples import Example, Task
from tunesmith.data.formats import FORMAT_TASK, read_dataset
from tunesmith.data.jsonline import surrogate_path
from tunesmith.data.taskfile import TASK_FILE, TaskSpec, write_task
from tunesmith.data.tasks import task_kind
from tunesmith.data.validate import check_dataset
from tunesmith.errors import InvalidDataError, UsageError
from tunesmith.outputs import check_not_input, claim_dir

SPLITS = ("train", "validation", "test")


@dataclass
class PrepareResult:
    out: Path
    spec: TaskSpec
    counts: dict[str, int]
    """Examples per split."""
    label_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """Classification: split -> label -> examples."""
    read: int = 0
    skipped_invalid: int = 0
    dropped_duplicates: int = 0
    dropped_conflicts: int = 0

    def to_dict(self) -> dict:
        return {"out": str(self.out), "task": self.spec.to_dict(), "counts": self.counts,
                "label_counts": self.label_counts, "read": self.read,
                "skipped_invalid": self.skipped_invalid,
                "dropped_duplicates": self.dropped_duplicates,
                "dropped_conflicts": self.dropped_conflicts,
                "files": {s: str(self.out / f"{s}.jsonl") for s in SPLITS}}


def split_examples(
    examples: list[Example], val: float, test: float, seed: int, stratify: bool
) -> dict[str, list[Example]]:
    """Seeded split; with `stratify`, each label keeps its share in every split (and at least one
    example of each label stays in train)."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for e in examples:
        groups[label_of(e) if stratify else ""].append(e)
    rng = random.Random(seed)
    out: dict[str, list[Example]] = {s: [] for s in SPLITS}
    for name in sorted(groups):
        group = groups[name][:]
        rng.shuffle(group)
        n = len(group)
        n_test, n_val = round(n * test), round(n * val)
        while n_test + n_val >= n and n_test + n_val > 0:  # keep >= 1 for training
            if n_test >= n_val and n_test > 0:
                n_test -= 1
            else:
                n_val -= 1
        out["test"] += group[:n_test]
        out["validation"] += group[n_test:n_test + n_val]
        out["train"] += group[n_test + n_val:]
    for s in SPLITS:
        rng.shuffle(out[s])
    return out


def prepare(
    path: str | Path,
    task: Task,
    out: str | Path,
    *,
    fmt: str | None = None,
    text_field: str = "text",
    label_field: str = "label",
    system: str | None = None,
    val: float = 0.1,
    test: float = 0.1,
    seed: int = 0,
    skip_invalid: bool = False,
    force: bool = False,
) -> PrepareResult:
    """Read `path`, check it, split it and write the chat-format splits and task.json into `out`.

    Raises:
        UnusableInputError: the input cannot be read at all.
        UsageError: the split fractions are impossible, or the file does not hold `task` data.
        InvalidDataError: the input has errors (each in `.issues`) and `skip_invalid` is False.
        UsageError: `out` would overwrite the input, is a file, or holds other files (and not
            `force`).
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise UsageError(f"--val {val} and --test {test} must be fractions in [0, 1) that leave "
                         "some examples for training.")
    if system is not None and (not system.strip() or surrogate_path(system) is not None):
        raise UsageError("--system must be non-empty text (valid UTF-8).")
    out = Path(out)
    check_not_input([out / f"{s}.jsonl" for s in SPLITS] + [out / TASK_FILE], [path])
    claim_dir(out, owned=(TASK_FILE,), force=force)
    data = read_dataset(path, fmt, text_field=text_field, label_field=label_field)
    native = FORMAT_TASK.get(data.format)
    if native is not None and native != task:
        raise UsageError(f"{path} is {data.format} data, which holds a {native} task, not "
                         f"--task {task}.")
    kind = task_kind(task)
    if kind.entities and data.format == "chat":
        bad = [e.line for e in data.examples if parse_entities(e.target) is None]
        if bad:
            raise InvalidDataError(path, [], f"--task ner needs answers that are JSON entity "
                                   f"lists; lines {', '.join(map(str, bad[:10]))} are not.")
    errors = [i for i in data.issues + check_dataset(data, task) if i.severity == "error"
              and i.code != "too_few_examples"]
    if errors and not skip_invalid:
        raise InvalidDataError(path, errors, f"{len(errors)} errors; fix them, or pass "
                               "--skip-invalid to leave those rows out.")
    examples, duplicates, conflicts = _dedupe(data.examples)
    if len(examples) < 3:
        raise InvalidDataError(path, data.errors, f"only {len(examples)} usable examples; "
                               "nothing to split.")
    spec = _task_spec(task, examples, system)
    examples = [kind.normalize(e).with_system(spec.system or None) for e in examples]
    splits = split_examples(examples, val, test, seed, stratify=kind.labelled)
    for split in SPLITS:
        with atomic_open(out / f"{split}.jsonl") as f:
            for e in splits[split]:
                f.write(json.dumps(e.to_chat(), ensure_ascii=False) + "\n")
    write_task(out, spec)  # last: a folder with task.json is a complete one
    labels = ({s: dict(Counter(label_of(e) for e in splits[s]).most_common()) for s in SPLITS}
              if kind.labelled else {})
    return PrepareResult(out, spec, {s: len(splits[s]) for s in SPLITS}, labels, data.rows,
                         data.rows - len(data.examples), duplicates, conflicts)


def _dedupe(examples: list[Example]) -> tuple[list[Example], int, int]:
    seen_keys: set[str] = set()
    seen_prompts: set[str] = set()
    kept: list[Example] = []
    duplicates = conflicts = 0
    for e in examples:
        if e.key in seen_keys:
            duplicates += 1
        elif e.prompt_key in seen_prompts:
            conflicts += 1
        else:
            seen_keys.add(e.key)
            seen_prompts.add(e.prompt_key)
            kept.append(e)
    return kept, duplicates, conflicts


def _task_spec(task: Task, examples: list[Example], system: str | None) -> TaskSpec:
    kind = task_kind(task)
    labels = kind.classes(examples)
    if system is None:
        existing = Counter(e.messages[0].content for e in examples if e.messages[0].role == "system")
        system = existing.most_common(1)[0][0] if existing else kind.default_system(labels)
    return TaskSpec(task, labels, system)
