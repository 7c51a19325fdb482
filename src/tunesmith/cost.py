"""Pricing the approaches: one-off cost, cost per 1,000 requests, and when fine-tuning pays back.

Pure arithmetic over measured quantities and the price table:

    self-hosted   per request = seconds per request x hourly price / 3600, the seconds from the
                  request's tokens at the model's measured prefill/decode rates (throughput.py)
                  one-off     = measured training hours x hourly price
    endpoint      per request = prompt tokens x input price + answer tokens x output price, the
                  tokens as the endpoint's `usage` reported them; "price unknown" without an entry
    OpenAI        per request = prompt tokens x input price + answer tokens x output price
                  one-off     = training tokens x epochs x training price (fine-tuned models)

    break-even    requests at which two approaches' totals meet:
                  (one-off B - one-off A) / (per-request A - per-request B)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from tunesmith.atomic import atomic_open
from tunesmith.pricing import ChatPrice, HardwarePrice, OpenAIPrice


@dataclass(frozen=True)
class ApproachCost:
    name: str
    kind: Literal["prompt", "fine-tune"]
    where: str
    """`self-hosted (cpu-2vcpu)` or `OpenAI gpt-4o-mini-2024-07-18`."""
    one_off_usd: float
    per_1k_requests_usd: float
    basis: str
    """How the figures were computed, in words."""
    known: bool = True
    """False when the price table has no entry for the model: the figures are NaN, never 0."""

    def total(self, requests: float) -> float:
        """One-off plus `requests` requests (NaN when the price is unknown)."""
        return self.one_off_usd + requests / 1000 * self.per_1k_requests_usd

    def to_dict(self) -> dict:
        return asdict(self)


def self_hosted(name: str, kind: Literal["prompt", "fine-tune"], seconds_per_request: float,
                hardware: HardwarePrice, training_seconds: float = 0.0) -> ApproachCost:
    """Cost of running (and training) on rented hardware, from measured times.

    Example:
        0.5 s per request on a $0.0893/h machine: 1,000 requests = 500 s = $0.0124.
    """
    per_1k = seconds_per_request * 1000 / 3600 * hardware.hourly
    one_off = training_seconds / 3600 * hardware.hourly
    basis = (f"{seconds_per_request:.3f} s/request measured x ${hardware.hourly}/h"
             + (f"; training {training_seconds / 60:.1f} min measured" if training_seconds else ""))
    return ApproachCost(name, kind, f"self-hosted ({hardware.name})", one_off, per_1k, basis)


def self_hosted_tokens(name: str, kind: Literal["prompt", "fine-tune"], prompt_tokens: float,
                       answer_tokens: float, throughput, hardware: HardwarePrice, *,
                       scored: bool = False, training_seconds: float = 0.0,
                       latency_s: float | None = None) -> ApproachCost:
    """Self-hosted cost from a request's tokens at the model's measured rates (`Throughput`),
    so the price does not move with the machine's load. `scored`: label scoring reads the
    answer's tokens rather than writing them.

    Example:
        86 prompt + 3.6 answer tokens, 1,300 prefill / 45 decode tokens/s, $0.0893/h:
        0.066 + 0.080 = 0.146 s per request; 1,000 requests = $0.0036.
    """
    seconds = throughput.seconds(prompt_tokens, answer_tokens, scored=scored)
    cost = self_hosted(name, kind, seconds, hardware, training_seconds)
    basis = (f"{prompt_tokens:.0f} prompt + {answer_tokens:.1f} answer tokens at "
             f"{throughput.prefill_tokens_per_s:,.0f} prefill / "
             f"{throughput.decode_tokens_per_s:,.0f} decode tokens/s (measured; "
             f"{'answers scored' if scored else 'answers generated'}) = {seconds:.3f} s x "
             f"${hardware.hourly}/h")
    if latency_s is not None:
        basis += f"; latency measured {1000 * latency_s:.0f} ms/request"
    if training_seconds:
        basis += f"; training {training_seconds / 60:.1f} min measured"
    return ApproachCost(name, kind, cost.where, cost.one_off_usd, cost.per_1k_requests_usd,
                        basis)


def endpoint(name: str, where: str, prompt_tokens: float, completion_tokens: float,
             price: ChatPrice | None) -> ApproachCost:
    """Prompting a model through an endpoint, at its price table entry; NaN and `known=False`
    when there is none (never $0)."""
    if price is None:
        return ApproachCost(name, "prompt", where, 0.0, float("nan"),
                            "price unknown: name the model in a price table passed with "
                            "--prices (section endpoints:)", known=False)
    per_request = (prompt_tokens * price.input + completion_tokens * price.output) / 1e6
    basis = (f"{prompt_tokens:.0f} prompt + {completion_tokens:.1f} answer tokens/request (the "
             f"endpoint's usage) at ${price.input}/${price.output} per 1M ({price.model})")
    return ApproachCost(name, "prompt", where, 0.0, per_request * 1000, basis)


def openai(name: str, kind: Literal["prompt", "fine-tune"], prompt_tokens: float,
           completion_tokens: float, price: OpenAIPrice, training_tokens: int = 0) -> ApproachCost:
    """OpenAI list prices for the same requests (fine-tuned rates when `kind` is fine-tune).

    Example:
        gpt-4o-mini base ($0.15 in, $0.60 out per 1M), 500 prompt + 5 answer tokens:
        1,000 requests = 500,000 x 0.15/1e6 + 5,000 x 0.60/1e6 = $0.078.
    """
    ft = kind == "fine-tune"
    per_request = (prompt_tokens * (price.ft_input if ft else price.base_input)
                   + completion_tokens * (price.ft_output if ft else price.base_output)) / 1e6
    one_off = training_tokens * price.training / 1e6 if ft else 0.0
    basis = (f"{prompt_tokens:.0f} prompt + {completion_tokens:.1f} answer tokens/request at "
             f"{'fine-tuned' if ft else 'base'} prices"
             + (f"; {training_tokens:,} billed training tokens" if ft else ""))
    return ApproachCost(name, kind, f"OpenAI {price.model}", one_off, per_request * 1000, basis)


def break_even(a: ApproachCost, b: ApproachCost) -> float | None:
    """Requests after which `b` (higher one-off) becomes cheaper than `a`; None if never, or if
    either price is unknown."""
    if not (a.known and b.known):
        return None
    saving = a.per_1k_requests_usd - b.per_1k_requests_usd
    extra = b.one_off_usd - a.one_off_usd
    if saving <= 0:
        return None
    return max(extra, 0.0) / saving * 1000


def plot_costs(costs: list[ApproachCost], path: Path, marker: float | None = None) -> None:
    """Total cost against requests served (log-log), one line per approach."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    volumes = np.logspace(2, 8, 61)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for c in (c for c in costs if c.known):
        style = "-" if c.where.startswith("self") else "--"
        ax.plot(volumes, [max(c.total(v), 1e-4) for v in volumes], style,
                label=f"{c.name} ({c.where})")
    if marker:
        ax.axvline(marker, color="grey", lw=0.8, ls=":")
        ax.text(marker, ax.get_ylim()[1], " --requests-per-month", va="top", fontsize=7,
                color="grey")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("requests served")
    ax.set_ylabel("total cost, USD (one-off + per request)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)
