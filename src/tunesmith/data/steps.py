"""Which examples each optimizer step takes: the epoch's shuffled order, cut into steps.

    --batch-size 8          8 examples a step (OpenAI's meaning; the last step may be smaller)
    --batch-tokens 16384    as many whole examples as fit 16,384 tokens a step (at least one):
                            steady work per step whatever the example lengths; a short
                            classification example (~80 tokens) no longer makes a tiny step

The order of an epoch is a function of the seed and the epoch alone, so a resumed run (and the
learning-rate schedule, which needs the step count up front) sees the same steps.
"""

from __future__ import annotations

import torch


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The shuffled example indices of `epoch` (0-based)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()


def epoch_steps(lengths: list[int], seed: int, epoch: int, batch_size: int,
                batch_tokens: int = 0) -> list[list[int]]:
    """The example indices of each step of `epoch`.

    Example:
        >>> cut([5, 5, 5], [0, 1, 2], batch_size=2, batch_tokens=0)
        [[0, 1], [2]]
    """
    return cut(lengths, epoch_order(len(lengths), seed, epoch), batch_size, batch_tokens)


def cut(lengths: list[int], order: list[int], batch_size: int,
        batch_tokens: int = 0) -> list[list[int]]:
    """`order` cut into steps of `batch_size` examples, or (`batch_tokens` > 0) of whole
    examples up to that many tokens."""
    if batch_tokens <= 0:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    steps: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in order:
        if current and used + lengths[i] > batch_tokens:
            steps.append(current)
            current, used = [], 0
        current.append(i)
        used += lengths[i]
    if current:
        steps.append(current)
    return steps
