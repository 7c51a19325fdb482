"""Hyperparameters derived from the data, the way OpenAI's fine-tuning API picks its "auto" values.

The epoch rule is the one in OpenAI's chat fine-tuning data-preparation guide
(cookbook: "Data preparation and analysis for chat model fine-tuning"): aim at 3 passes, but see
at least 100 and at most 25,000 examples in total, with 1 to 25 epochs.
"""

from __future__ import annotations

TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25
OPENAI_MAX_TOKENS_PER_EXAMPLE = 16_385
"""OpenAI bills at most this many tokens per example (the guide's constant)."""


def auto_epochs(n_examples: int) -> int:
    """Epochs OpenAI's `n_epochs="auto"` picks for a training file of `n_examples`.

    Examples:
        >>> auto_epochs(20), auto_epochs(500), auto_epochs(20_000)
        (5, 3, 1)
    """
    if n_examples <= 0:
        return TARGET_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


def billed_tokens(example_tokens: list[int], epochs: int) -> int:
    """Training tokens OpenAI bills: each example's tokens (capped) times the epochs."""
    return sum(min(OPENAI_MAX_TOKENS_PER_EXAMPLE, n) for n in example_tokens) * epochs
