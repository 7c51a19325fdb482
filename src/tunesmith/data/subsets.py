"""Nested, stratified, seeded subsets of a training split: every size is a prefix of one order,
so each subset contains the smaller ones, and every prefix keeps the label proportions."""

from __future__ import annotations

import random
from collections import defaultdict

from tunesmith.data.answers import label_of
from tunesmith.data.examples import Example
from tunesmith.data.tasks import task_kind

MIN_SIZE = 8


def nested_order(examples: list[Example], task: str, seed: int = 0) -> list[int]:
    """Indices of `examples` in the order subsets take them.

    Classification: each label's examples are shuffled and spread evenly over [0, 1) (the j-th
    of n_k at (j + u) / n_k, u uniform), then all are sorted by position; any prefix then holds
    each label in proportion to its share, to within one example. Other tasks: a seeded shuffle.
    """
    rng = random.Random(seed)
    if not task_kind(task).labelled:
        order = list(range(len(examples)))
        rng.shuffle(order)
        return order
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        by_label[label_of(e)].append(i)
    keyed = []
    for label in sorted(by_label):
        members = by_label[label]
        rng.shuffle(members)
        for j, i in enumerate(members):
            keyed.append(((j + rng.random()) / len(members), rng.random(), i))
    keyed.sort()
    return [i for _, _, i in keyed]


def auto_sizes(n: int) -> list[int]:
    """Halvings of the training set down to 50 (MIN_SIZE for sets under 200), at most six:
    2,000 -> 62, 125, 250, 500, 1,000, 2,000."""
    floor = 50 if n >= 200 else MIN_SIZE
    sizes = [n]
    while sizes[-1] // 2 >= floor and len(sizes) < 6:
        sizes.append(sizes[-1] // 2)
    return sorted(sizes)
