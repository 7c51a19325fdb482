"""`--batch-tokens auto`: as many tokens a step as the device's memory holds in one pass.

On CUDA the peak memory of a real training pass (forward, loss, backward, with the run's model,
method, precision and longest examples) is measured at one and two longest examples' tokens;
the line through those two points says how many tokens fit in 90% of the GPU's memory, less what
the optimizer will hold (its state is made at the first step, after this). That size is then
measured itself, and shrunk by a quarter until it fits. On CPU (memory is not what limits a
step there) auto is `--micro-batch-tokens`. Either way a step is at most 1/16 of an epoch's
tokens, so a small data set still takes at least ~16 steps an epoch.

The resolved number is saved in config.yaml as `batch_tokens` (`micro_batch_tokens` is raised to
it: a step is one pass); `--resume` reuses it rather than measuring again.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

HEADROOM = 0.9
"""Fraction of the device's memory a step may use (the allocator fragments the rest)."""
MIN_STEPS_PER_EPOCH = 16


def fit_tokens(measure: Callable[[int], int], *, unit: int, budget: int, cap: int) -> int:
    """The largest multiple of `unit` tokens, at most `cap`, whose pass `measure(tokens)` peaks
    under `budget` bytes. `measure` raises MemoryError when the pass does not fit at all.

    Example (a pass that takes 1 GB plus 1 MB a token, in a 3 GB budget):
        >>> fit_tokens(lambda n: 2**30 + n * 2**20, unit=256, budget=3 * 2**30, cap=10**6)
        2048
    """
    cap = max(unit, cap // unit * unit)
    one = measure(unit)
    try:
        two = measure(2 * unit)
    except MemoryError:
        return unit
    per_token = max((two - one) / unit, 1.0)
    fixed = one - per_token * unit
    tokens = min(cap, max(unit, int((budget - fixed) / per_token) // unit * unit))
    while tokens > unit:  # the line is an estimate: check it, and shrink until it fits
        try:
            if measure(tokens) <= budget:
                return tokens
        except MemoryError:
            pass
        tokens = max(unit, tokens * 3 // 4 // unit * unit)
    return unit


def optimizer_state_bytes(params: list[torch.Tensor], optimizer: str) -> int:
    """What the optimizer will hold once it has stepped: AdamW's two moments a parameter, in
    the parameter's dtype (fp32 or, under bf16-true, bf16), or one byte each (8-bit)."""
    eight_bit = optimizer == "adamw-8bit"
    return sum(2 * p.numel() * (1 if eight_bit else p.element_size()) for p in params)


def cuda_pass_peak(run_pass: Callable[[int], None], device: torch.device) -> Callable[[int], int]:
    """`measure` for `fit_tokens` on a CUDA device: the peak bytes allocated while
    `run_pass(tokens)` runs (a training pass, gradients left for the caller to free)."""

    def measure(tokens: int) -> int:
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        try:
            run_pass(tokens)
            torch.cuda.synchronize(device)
        except torch.cuda.OutOfMemoryError:
            raise MemoryError(f"{tokens} tokens do not fit") from None
        finally:
            torch.cuda.empty_cache()
        return torch.cuda.max_memory_allocated(device)

    return measure


def cuda_budget(device: torch.device, optimizer_bytes: int) -> int:
    """Bytes a pass may peak at: 90% of what this process can have, less the optimizer's state."""
    free, _total = torch.cuda.mem_get_info(device)
    return int(HEADROOM * (free + torch.cuda.memory_allocated(device))) - optimizer_bytes


def epoch_cap(lengths: list[int]) -> int:
    """At most 1/16 of an epoch's tokens a step (and at least the longest example)."""
    return max(max(lengths, default=1), sum(lengths) // MIN_STEPS_PER_EPOCH)


def measure_batch_tokens(loss_fn, objective, items, lengths: list[int], params, cfg,
                         device: torch.device, autocast, pad_id: int) -> int:
    """--batch-tokens auto on CUDA: the most tokens a training pass over the longest examples
    takes within the GPU's memory (`fit_tokens`); each pass's gradients are freed after it."""
    longest = sorted(range(len(items)), key=lambda i: -lengths[i])

    def run_pass(tokens: int) -> None:
        chosen, used = [], 0
        for i in itertools.islice(itertools.cycle(longest), 10 * tokens):
            if used + lengths[i] > tokens:
                break
            chosen.append(items[i])
            used += lengths[i]
        try:
            for batch in objective.batches(chosen, cfg.pack, tokens, pad_id):
                with autocast():
                    out = loss_fn(batch.to(device))
                out[0].backward()
        finally:
            for p in params:
                p.grad = None

    return fit_tokens(
        cuda_pass_peak(run_pass, device), unit=max(lengths),
        budget=cuda_budget(device, optimizer_state_bytes(params, cfg.optimizer)),
        cap=epoch_cap(lengths))
