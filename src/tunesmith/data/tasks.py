"""One object per task kind: what its answers are, how a data set of it is checked and
prepared, and the metric it is decided on. Everything that differs between tasks asks the task
object (`task_kind(name)`), never compares the task's name.

    task            answer                         classes        head         decided on
    classification  one label                      labels         classifier   macro-F1
    ner             a JSON list of entities        entity types   token        entity F1
    chat            free text (any assistant turn) none           none         token F1

The evaluation layer extends these objects with prediction, metrics and a bootstrap sampler
(`evaluation/tasks/`); both registries hold the same names.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import ClassVar, Literal

from tunesmith.data.answers import entity_type_counts, label_counts, label_of, parse_entities
from tunesmith.data.examples import TASKS, Dataset, Example, Message, Task, entities_json
from tunesmith.data.issues import Issue, warning
from tunesmith.data.taskfile import TaskSpec

IMBALANCE_RATIO = 10.0
"""Warn when the most frequent label has this many times the examples of the rarest."""
MIN_PER_LABEL = 5


class TaskKind:
    """What every task kind answers; the subclasses below fill it in."""

    name: ClassVar[Task]
    metric: ClassVar[str]
    """The key of the metric decisions are made on (`EvalResult.metrics[metric]`)."""
    metric_name: ClassVar[str]
    """How reports name that metric."""
    head: ClassVar[Literal["classifier", "token"] | None] = None
    """The task head a `*-head` approach trains for this task (None: it has none)."""
    classes_word: ClassVar[str] = ""
    """What its classes are called ("labels", "entity types"); '' for none."""
    labelled: ClassVar[bool] = False
    """One label per example: splits and shots are stratified by it, label errors audited."""
    entities: ClassVar[bool] = False
    """Answers are entity lists: entity spans audited for inconsistent types."""
    open_ended: ClassVar[bool] = False
    """Answers are free text: there is no label set, answers themselves can be outliers."""

    def class_counts(self, examples: list[Example]) -> dict[str, int]:
        """Examples per class, most frequent first ({} for a task without classes)."""
        return {}

    def classes(self, examples: list[Example]) -> list[str]:
        """The sorted class set that `examples` show (task.json's `labels`)."""
        return sorted(k for k in self.class_counts(examples) if k)

    def default_system(self, classes: list[str]) -> str:
        """The system instruction `data prepare` writes when the user gives none."""
        return ""

    def normalize(self, example: Example) -> Example:
        """The example with its answer written the way training expects it."""
        return example

    def check(self, examples: list[Example], spec: TaskSpec | None) -> list[Issue]:
        """This task's checks of a whole data set (beside the ones every task gets)."""
        return []

    def check_against_train(self, data: Dataset, train: Dataset) -> list[Issue]:
        """This task's checks of a validation or test file against the training file."""
        return []


class Classification(TaskKind):
    name = "classification"
    metric = "macro_f1"
    metric_name = "macro-F1"
    head = "classifier"
    classes_word = "labels"
    labelled = True

    def class_counts(self, examples: list[Example]) -> dict[str, int]:
        return label_counts(examples)

    def default_system(self, classes: list[str]) -> str:
        return ("Classify the text into exactly one of these labels: " + ", ".join(classes)
                + ". Answer with the label only.")

    def normalize(self, example: Example) -> Example:
        """The answer is the bare label."""
        messages = list(example.messages)
        last = max(i for i, m in enumerate(messages) if m.role == "assistant")
        messages[last] = Message("assistant", label_of(example), messages[last].weight)
        return replace(example, messages=messages)  # keeps tools and the rest

    def check(self, examples: list[Example], spec: TaskSpec | None) -> list[Issue]:
        issues = _label_balance(examples)
        if spec and spec.labels:
            known = set(spec.labels)
            for e in examples:
                if label_of(e) not in known:
                    issues.append(Issue("unknown_label", f"label '{label_of(e)}' is not in "
                                        "task.json's label set.", e.line, "label"))
        return issues

    def check_against_train(self, data: Dataset, train: Dataset) -> list[Issue]:
        seen = set(label_counts(train.examples))
        return [warning("label_not_in_train", f"label '{label}' ({count} examples) never "
                        "occurs in the training file.", None, "label")
                for label, count in label_counts(data.examples).items() if label not in seen]


class Ner(TaskKind):
    name = "ner"
    metric = "f1"
    metric_name = "entity F1"
    head = "token"
    classes_word = "entity types"
    entities = True

    def class_counts(self, examples: list[Example]) -> dict[str, int]:
        """Entities per type, plus examples with none under ''."""
        return entity_type_counts(examples)

    def default_system(self, classes: list[str]) -> str:
        return ('Extract the named entities from the text. Reply with a JSON list of objects '
                '{"text": ..., "type": ...}, where type is one of: ' + ", ".join(classes)
                + ". Reply [] if there are none.")

    def normalize(self, example: Example) -> Example:
        """The answer is the entity list, serialised compactly."""
        messages = list(example.messages)
        last = max(i for i, m in enumerate(messages) if m.role == "assistant")
        text = (entities_json(example.entities) if example.entities is not None
                else json.dumps(parse_entities(example.target) or [], ensure_ascii=False))
        messages[last] = Message("assistant", text, messages[last].weight)
        return replace(example, messages=messages)

    def check(self, examples: list[Example], spec: TaskSpec | None) -> list[Issue]:
        issues: list[Issue] = []
        for e in examples:
            entities = parse_entities(e.target)
            if entities is None:
                issues.append(Issue("invalid_target", "the answer is not a JSON list of "
                                    '{"text": ..., "type": ...} objects.', e.line, "assistant"))
                continue
            for x in entities:
                if x["text"] not in e.prompt_key:
                    issues.append(warning("entity_not_in_text", f"entity '{x['text']}' does not "
                                          "occur in the input text.", e.line, "assistant"))
        return issues

    def check_against_train(self, data: Dataset, train: Dataset) -> list[Issue]:
        seen = set(entity_type_counts(train.examples))
        return [warning("label_not_in_train", f"entity type '{kind}' never occurs in the "
                        "training file.", None, "type")
                for kind in entity_type_counts(data.examples) if kind and kind not in seen]


class Chat(TaskKind):
    name = "chat"
    metric = "token_f1"
    metric_name = "token F1"
    open_ended = True


TASK_KINDS: dict[str, TaskKind] = {t.name: t for t in (Classification(), Ner(), Chat())}
assert tuple(TASK_KINDS) == TASKS


def task_kind(name: str) -> TaskKind:
    """The task object of `name` (one of TASKS)."""
    return TASK_KINDS[name]


def _label_balance(examples: list[Example]) -> list[Issue]:
    counts = label_counts(examples)
    if len(counts) < 2:
        return [Issue("single_label", f"only one label ({next(iter(counts), 'none')}): there is "
                      "nothing to classify.")] if counts else []
    issues = []
    most, least = max(counts.values()), min(counts.values())
    if most / least >= IMBALANCE_RATIO:
        rare = [k for k, v in counts.items() if v == least]
        issues.append(warning("label_imbalance", f"labels are imbalanced: {most} vs {least} examples "
                              f"(rarest: {', '.join(rare[:5])}); watch macro-F1, not accuracy."))
    few = [f"{k} ({v})" for k, v in counts.items() if v < MIN_PER_LABEL]
    if few:
        issues.append(warning("rare_labels", f"{len(few)} labels have fewer than {MIN_PER_LABEL} "
                              f"examples: {', '.join(few[:10])}{', ...' if len(few) > 10 else '.'}"))
    return issues
