"""Token statistics of a data set with a given model's tokenizer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from tunesmith.data.examples import Example
from tunesmith.data.render import full_messages, prompt_messages, render

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass
class TokenCounts:
    """Per-example token counts, in example order."""

    total: list[int]
    """Whole rendered conversation (prompt + answer + end-of-turn)."""
    completion: list[int]
    """The last assistant answer and what the template appends after it."""

    @property
    def prompt(self) -> list[int]:
        return [t - c for t, c in zip(self.total, self.completion)]


@dataclass
class TokenStats:
    examples: int
    total_tokens: int
    min: int
    median: float
    p95: float
    max: int
    mean: float
    mean_prompt_tokens: float
    mean_completion_tokens: float
    max_seq_len: int
    truncated: int
    """Examples longer than `max_seq_len`: training would cut them."""

    def to_dict(self) -> dict:
        return asdict(self)


def count_tokens(examples: list[Example], tokenizer: PreTrainedTokenizerBase) -> TokenCounts:
    """Count tokens as the model would see them: rendered with its chat template, in batches
    (10,000 short examples take about 2 s on a laptop core)."""
    if not examples:
        return TokenCounts([], [])
    full = _render_all(tokenizer, examples, full_messages, False)
    prompts = _render_all(tokenizer, examples, prompt_messages, True)
    total = [len(ids) for ids in tokenizer(full, add_special_tokens=False)["input_ids"]]
    prompt = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    return TokenCounts(total, [max(t - p, 0) for t, p in zip(total, prompt)])


def _render_all(tokenizer: PreTrainedTokenizerBase, examples: list[Example],
                messages_of: Callable[[Example], list[dict]], generation: bool) -> list[str]:
    """Examples without tools in one batch; those with tools one by one (each row offers its
    own tools, which count as prompt tokens)."""
    plain = iter(render(tokenizer, [messages_of(e) for e in examples if not e.tools], generation))
    return [next(plain) if not e.tools else render(tokenizer, [messages_of(e)], generation,
                                                     e.tools)[0] for e in examples]


def token_stats(counts: TokenCounts, max_seq_len: int) -> TokenStats:
    """Exact statistics over every example (percentiles by linear interpolation, numpy's default)."""
    total = np.asarray(counts.total or [0])
    n = len(counts.total)
    return TokenStats(
        examples=n,
        total_tokens=int(total.sum()),
        min=int(total.min()),
        median=float(np.percentile(total, 50)),
        p95=float(np.percentile(total, 95)),
        max=int(total.max()),
        mean=float(total.mean()),
        mean_prompt_tokens=float(np.mean(counts.prompt)) if n else 0.0,
        mean_completion_tokens=float(np.mean(counts.completion)) if n else 0.0,
        max_seq_len=max_seq_len,
        truncated=int((total > max_seq_len).sum()) if n else 0,
    )
