"""Zero- and few-shot prompts, rendered as chat turns with the model's own template.

A 2-shot prompt for a routing task:

    system     Classify the text into exactly one of these labels: billing, outage. ...
    user       my invoice doubled          <- shot 1 (from the training split)
    assistant  billing
    user       lights are out              <- shot 2
    assistant  outage
    user       why was I charged twice     <- the test example
    assistant  ...                          <- the model answers here
"""

from __future__ import annotations

import random
from collections import defaultdict

from tunesmith.data.answers import label_of
from tunesmith.data.examples import Example, Message, Task
from tunesmith.data.tasks import task_kind


def select_shots(train: list[Example], k: int, task: Task, seed: int = 0) -> list[Example]:
    """K examples from the training split, seeded. Classification shots are stratified: labels
    are visited round-robin in a seeded order, so K >= the number of labels shows every label."""
    if k <= 0 or not train:
        return []
    rng = random.Random(seed)
    if not task_kind(task).labelled:
        return rng.sample(train, min(k, len(train)))
    by_label: dict[str, list[Example]] = defaultdict(list)
    for e in train:
        by_label[label_of(e)].append(e)
    for group in by_label.values():
        rng.shuffle(group)
    labels = sorted(by_label)
    rng.shuffle(labels)
    shots: list[Example] = []
    depth = 0
    while len(shots) < min(k, len(train)):
        for label in labels:
            if depth < len(by_label[label]) and len(shots) < k:
                shots.append(by_label[label][depth])
        depth += 1
    rng.shuffle(shots)
    return shots


def prompt_with_shots(example: Example, shots: list[Example], system: str | None) -> list[dict]:
    """The messages a model is given for `example`: system, the shots as earlier turns, then the
    example's own non-answer messages."""
    messages: list[dict] = []
    if system:
        messages.append({"role": "system", "content": system})
    for shot in shots:
        for m in _turns(shot):
            messages.append({"role": m.role, "content": m.content})
    last = max(i for i, m in enumerate(example.messages) if m.role == "assistant")
    messages += [{"role": m.role, "content": m.content} for m in example.messages[:last]
                 if m.role != "system"]
    return messages


def _turns(example: Example) -> list[Message]:
    return [m for m in example.messages if m.role != "system"]
