"""Checks over a whole data set (one row's checks live with its format's reader).

Each function returns a list of `Issue`s and never stops at the first finding.
"""

from __future__ import annotations

from tunesmith.data.answers import parse_entities
from tunesmith.data.examples import Dataset, Example, Task
from tunesmith.data.formats import FORMAT_TASK
from tunesmith.data.issues import Issue, warning
from tunesmith.data.taskfile import TaskSpec
from tunesmith.data.tasks import task_kind

MIN_EXAMPLES = 10
"""OpenAI refuses training files with fewer examples."""
RECOMMENDED_EXAMPLES = 50
"""OpenAI's guide: clear improvements usually start at 50-100 examples."""


def infer_task(data: Dataset, declared: TaskSpec | None = None) -> Task:
    """The task of a data set: task.json if given, else the format's, else guessed from the
    answers (any tool use: chat; all JSON entity lists: ner; few distinct short answers:
    classification; else chat)."""
    if declared is not None:
        return declared.task
    if data.format in FORMAT_TASK and data.format not in ("completion", "alpaca"):
        return FORMAT_TASK[data.format]  # type: ignore[return-value]
    targets = [e.target.strip() for e in data.examples]
    if not targets or any(e.uses_tools for e in data.examples):  # tool use: a chat by nature
        return "chat"
    if sum(parse_entities(t) is not None for t in targets) >= 0.9 * len(targets):
        return "ner"
    distinct = set(targets)
    short = sum(len(t.split()) <= 4 for t in targets) >= 0.95 * len(targets)
    if short and len(distinct) <= max(2, min(200, len(targets) // 2)):
        return "classification"
    return "chat"


def check_dataset(data: Dataset, task: Task, spec: TaskSpec | None = None) -> list[Issue]:
    """Whole-file checks: too few examples, duplicates, conflicting answers, label balance, labels
    outside task.json's label set, NER answers that are not entity lists or not in the text."""
    issues: list[Issue] = []
    n = len(data.examples)
    if n < MIN_EXAMPLES:
        issues.append(Issue("too_few_examples", f"{n} valid examples; fine-tuning needs at least "
                            f"{MIN_EXAMPLES} (OpenAI refuses fewer)."))
    elif n < RECOMMENDED_EXAMPLES:
        issues.append(warning("few_examples", f"{n} examples; OpenAI's guide sees clear gains from "
                              f"{RECOMMENDED_EXAMPLES}-100 on."))
    issues += _duplicates(data.examples)
    issues += task_kind(task).check(data.examples, spec)
    return issues


def _duplicates(examples: list[Example]) -> list[Issue]:
    issues: list[Issue] = []
    first_by_key: dict[str, int] = {}
    first_by_prompt: dict[str, Example] = {}
    for e in examples:
        if e.key in first_by_key:
            issues.append(warning("duplicate_example",
                                  f"the same example as line {first_by_key[e.key]}.", e.line))
            continue
        first_by_key[e.key] = e.line
        other = first_by_prompt.setdefault(e.prompt_key, e)
        if other is not e:
            issues.append(warning("conflicting_answers", f"same input as line {other.line} but a "
                                  f"different answer ({_difference(e.target, other.target)}).",
                                  e.line))
    return issues


def check_against_train(data: Dataset, train: Dataset, task: Task) -> list[Issue]:
    """For a validation or test file: examples also in the training file (their scores would be
    inflated) and labels the training file never shows."""
    issues: list[Issue] = []
    train_lines = {e.prompt_key: e.line for e in train.examples}
    for e in data.examples:
        if e.prompt_key in train_lines:
            issues.append(Issue("shared_with_train", f"the same input is in the training file "
                                f"(line {train_lines[e.prompt_key]}).", e.line))
    issues += task_kind(task).check_against_train(data, train)
    return issues


def check_lengths(data: Dataset, lengths: list[int], max_seq_len: int) -> list[Issue]:
    """Examples longer than `max_seq_len` tokens: training truncates them (and may cut the answer)."""
    return [warning("too_long", f"{n:,} tokens, over --max-seq-len {max_seq_len:,}: training "
                    "truncates it, possibly cutting the answer.", e.line)
            for e, n in zip(data.examples, lengths) if n > max_seq_len]


def _difference(a: str, b: str, width: int = 30) -> str:
    """'x' vs 'y', each cut to a window starting near where the two first differ."""
    a, b = a.strip().replace("\n", " "), b.strip().replace("\n", " ")
    start = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    start = max(0, start - 8)

    def cut(s: str) -> str:
        s = ("…" if start else "") + s[start:]
        return repr(s if len(s) <= width else s[: width - 1] + "…")

    return f"{cut(a)} vs {cut(b)}"
