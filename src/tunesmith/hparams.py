"""Hyperparameters derived from the data ("auto" values).

Only the epoch rule is OpenAI's: the one in its chat fine-tuning data-preparation guide
(cookbook: "Data preparation and analysis for chat model fine-tuning"): aim at 3 passes, but see
at least 100 and at most 25,000 examples in total, with 1 to 25 epochs. The batch-size and
learning-rate rules below are tunesmith's own (OpenAI does not publish its): ~0.2% of the
examples a batch, at least 8; the usual LoRA and full fine-tuning rates scaled by sqrt(batch/8).
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


MIN_AUTO_BATCH = 8
MAX_AUTO_BATCH = 256
LORA_LR = 2e-4
FULL_LR = 2e-5


def auto_batch_size(n_examples: int) -> int:
    """Examples per optimizer step for `batch_size="auto"`.

    OpenAI's fine-tuning picks about 0.2% of the training examples, capped at 256. Below 4,000
    examples that rounds to 1-8; we keep at least 8, so that a step packs several examples into
    one row and small data sets do not take hundreds of noisy one-example steps.

    Examples:
        >>> auto_batch_size(400), auto_batch_size(10_000), auto_batch_size(500_000)
        (8, 20, 256)
    """
    return max(MIN_AUTO_BATCH, min(MAX_AUTO_BATCH, round(0.002 * n_examples)))


HEAD_LR_FACTOR = 5.0
"""A task head starts from random weights and learns from one target per example (or word),
not one per answer token: at the LM rates it barely moves. Measured on WNUT-17 (400 sentences,
token head, LoRA, 3 epochs): entity F1 0.128 at 2e-4, 0.344 at 1e-3."""


DPO_LR_FACTOR = {"lora": 1.0, "full": 0.1}
"""DPO's rate against the supervised one. LoRA: the same. Measured (`bench/dpo_sst2.py`: 200
SST-2 preference pairs, SmolLM2-135M, 2 epochs): at a tenth (2e-5) the rewards barely moved
(validation margin 0.02, test macro-F1 0.774 from 0.799 before training); at 2e-4, margin 0.63
and macro-F1 0.880. Full weights: a tenth (2e-6), as DPO recipes for full fine-tuning use
1e-6 to 5e-7 (TRL's default, the Zephyr recipe); not measured here."""
DEFAULT_BETA = 0.1
"""DPO's beta when "auto": the DPO paper's, TRL's and OpenAI's default."""


def auto_learning_rate(method: str, batch_size: int, head: str = "lm",
                       loss: str = "sft") -> float:
    """Peak learning rate for `lr="auto"`: the usual LoRA (2e-4) and full fine-tuning (2e-5)
    rates at batch 8, 5x for a task head, for DPO the same (LoRA) or a tenth (full), scaled with
    the square root of the batch size (the AdamW rule of thumb)."""
    base = LORA_LR if method == "lora" else FULL_LR
    if head != "lm":
        base *= HEAD_LR_FACTOR
    if loss == "dpo":
        base *= DPO_LR_FACTOR["lora" if method == "lora" else "full"]
    return base * (batch_size / MIN_AUTO_BATCH) ** 0.5
