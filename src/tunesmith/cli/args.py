"""Argument types that refuse out-of-range values at parse time (argparse then exits 2 with the
flag's name and the reason), so no command ever starts with `--batch-size 0` or `--port 99999`."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

SEED_MAX = 2**32 - 1
"""numpy's seeds are 32-bit; torch and Python's accept these too."""


def int_range(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high] (either end open when None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is out of range: {_describe(low, high)}")
        return value

    return parse


def float_range(low: float | None = None, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number between low and high (ends included unless `*_open`)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        below = low is not None and (value <= low if low_open else value < low)
        above = high is not None and (value >= high if high_open else value > high)
        if below or above:
            lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
            hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
            raise argparse.ArgumentTypeError(f"{value:g} is out of range {lo or '(-inf'}, "
                                             f"{hi or 'inf)'}")
        return value

    return parse


def auto_or(parse: Callable[[str], int | float]) -> Callable[[str], int | float | str]:
    """`auto`, or a value `parse` accepts."""

    def parse_auto(text: str) -> int | float | str:
        return "auto" if text == "auto" else parse(text)

    return parse_auto


def _describe(low: int | None, high: int | None) -> str:
    if high is None:
        return f"must be at least {low}"
    if low is None:
        return f"must be at most {high}"
    return f"must be between {low} and {high}"


positive_int = int_range(1)
non_negative_int = int_range(0)
seed = int_range(0, SEED_MAX)
port = int_range(1, 65535)
fraction = float_range(0.0, 1.0, high_open=True)
"""In [0, 1)."""
positive_float = float_range(0.0, low_open=True)
non_negative_float = float_range(0.0)
