"""Pricing the approaches: one-off cost, cost per 1,000 requests, what a month costs as deployed,
and when fine-tuning pays back.

Pure arithmetic over measured quantities and the price table:

    self-hosted   per request = seconds per request x hourly price / 3600, the seconds from the
                  request's tokens at the model's measured prefill/decode rates at the serving
                  batch (throughput.py): the machine's busy time, and its capacity
                  (1 / seconds = requests/s)
                  one-off     = measured training hours x hourly price
    deployed      dedicated: machines = max(1, ceil(peak requests/s / (capacity x target
                  utilization))), peak = the month's requests over its open hours x
                  peak-to-average; billed machines x open hours x hourly price / shared-by
                  serverless: billed busy seconds + a cold start per scale-up (a request that
                  finds no warm machine: Poisson arrivals, a machine kept --scale-down-seconds
                  after its last request), no idle cost
    endpoint      per request = prompt tokens x input price + answer tokens x output price, the
                  tokens as the endpoint's `usage` reported them; "price unknown" without an entry
    OpenAI        per request = prompt tokens x input price + answer tokens x output price
                  one-off     = training tokens x epochs x training price (fine-tuned models)

    break-even    requests at which two approaches' totals meet:
                  (one-off B - one-off A) / (per-request A - per-request B)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from tunesmith.atomic import atomic_open
from tunesmith.errors import UsageError
from tunesmith.pricing import ChatPrice, HardwarePrice, OpenAIPrice

DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True)
class Deployment:
    """How a self-hosted approach is served, so that its cost is what a team is billed: idle
    machines included, sized for the peak (`compare`/`cost` flags of the same names)."""

    billing: Literal["dedicated", "serverless"] = field(default="dedicated",
                                                     metadata={"flag": "--deployment"})
    """`dedicated`: machines rented for the open hours whatever the traffic; `serverless`:
    per-second billing of busy time plus cold starts, nothing when idle."""
    peak_to_average: float = field(default=3.0, metadata={"metavar": "X"})
    """The busiest hour's request rate over the average one's."""
    hours_per_day: float = field(default=24.0, metadata={"metavar": "H"})
    """Hours a day the service is up (and its requests arrive in)."""
    target_utilization: float = field(default=0.6, metadata={"metavar": "U"})
    """The share of a machine's measured capacity a deployment is sized to use at the peak."""
    cold_start_seconds: float = field(default=30.0, metadata={"metavar": "S"})
    """Serverless: billed seconds to start a machine (load the model) before it answers."""
    scale_down_seconds: float = field(default=60.0, metadata={"metavar": "S"})
    """Serverless: how long a machine stays warm after its last request."""
    shared_by: int = field(default=1, metadata={"metavar": "K"})
    """Fine-tuned adapters that share one deployment (multi-LoRA serving): its fixed cost is
    divided among them."""
    engine: Literal["tunesmith", "vllm"] = field(default="tunesmith",
                                                 metadata={"flag": "--serving-engine"})
    """The engine self-hosted rows are served with: `tunesmith` runs every prompt whole; `vllm`
    caches prefixes, so the prompt part every request shares runs once."""
    machine: str | None = field(default=None, metadata={"metavar": "NAME"})
    """The price table's self_hosted machine type (default: the entry describing this machine;
    another type needs its capacity measured there, --capacity)."""
    capacity: str | None = field(default=None, metadata={"metavar": "FILE"})
    """Token rates measured on --machine for this model (`bench/capacity.py` run there): they
    price the self-hosted rows instead of this machine's."""

    def __post_init__(self) -> None:
        problems = []
        if self.billing not in ("dedicated", "serverless"):
            problems.append("--deployment must be dedicated or serverless")
        if not (math.isfinite(self.peak_to_average) and self.peak_to_average >= 1):
            problems.append("--peak-to-average must be a number of at least 1 (the peak over "
                            "the average)")
        if not 0 < self.hours_per_day <= 24:
            problems.append("--hours-per-day must be in (0, 24]")
        if not 0 < self.target_utilization <= 1:
            problems.append("--target-utilization must be in (0, 1]")
        if not (self.cold_start_seconds >= 0 and self.scale_down_seconds >= 0):
            problems.append("--cold-start-seconds and --scale-down-seconds must be >= 0")
        if not (isinstance(self.shared_by, int) and self.shared_by >= 1):
            problems.append("--shared-by must be a positive integer")
        if self.engine not in ("tunesmith", "vllm"):
            problems.append("--serving-engine must be tunesmith or vllm")
        if problems:
            raise UsageError("; ".join(problems) + ".")

    @property
    def open_hours(self) -> float:
        """Hours a month the service is up."""
        return self.hours_per_day * DAYS_PER_MONTH

    def describe(self) -> str:
        if self.billing == "serverless":
            return (f"serverless, {self.cold_start_seconds:g} s cold starts, warm "
                    f"{self.scale_down_seconds:g} s")
        shared = f", shared by {self.shared_by}" if self.shared_by > 1 else ""
        return (f"dedicated {self.hours_per_day:g} h/day, peak {self.peak_to_average:g}x the "
                f"average, {100 * self.target_utilization:.0f}% utilization{shared}, served "
                f"by {self.engine}")

    @property
    def caches_prefixes(self) -> bool:
        """Whether the serving engine runs a prompt prefix shared by requests once."""
        return self.engine == "vllm"


@dataclass(frozen=True)
class Month:
    """One month of a self-hosted deployment at a volume."""

    requests: float
    machines: int
    """Dedicated: machines rented (0 for serverless)."""
    billed_hours: float
    usd: float
    scale_ups: float = 0.0
    """Serverless: cold starts billed."""

    @property
    def per_1k_requests_usd(self) -> float:
        return self.usd / self.requests * 1000 if self.requests else float("nan")


def deployed_month(requests: float, capacity_rps: float, hourly: float,
                   d: Deployment) -> Month:
    """A month of `requests` served by machines of `capacity_rps` requests/s (at the serving
    batch) at `hourly` dollars an hour.

    Example:
        dedicated, 24 h/day, peak 3x, 60%: 1,000 requests a month need one machine; a $0.0893/h
        machine costs 730.5 h x 0.0893 = $65.23 a month, $65.23 per 1,000 requests.
    """
    open_seconds = d.open_hours * 3600
    if d.billing == "dedicated":
        peak = requests / open_seconds * d.peak_to_average
        machines = max(1, math.ceil(peak / (capacity_rps * d.target_utilization) - 1e-9))
        hours = machines * d.open_hours
        return Month(requests, machines, hours, hours * hourly / d.shared_by)
    busy = requests / capacity_rps
    rate = requests / open_seconds
    scale_ups = requests * math.exp(-rate * d.scale_down_seconds) if requests else 0.0
    seconds = busy + scale_ups * d.cold_start_seconds
    return Month(requests, 0, seconds / 3600, seconds / 3600 * hourly, scale_ups)


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
    capacity_rps: float | None = None
    """Self-hosted: requests/s one machine serves at the serving batch (measured); None for an
    approach billed per token."""
    hourly_usd: float | None = None
    """Self-hosted: the machine's price an hour."""
    deployment: Deployment | None = field(default=None, compare=False)
    """Self-hosted: how it is served; per-token rows: when their traffic arrives (for the prompt
    cache's hit rate). None: busy time only, and no cache."""
    warm_per_1k_usd: float | None = None
    """Per-token rows whose shared prompt prefix the endpoint caches: $/1k requests when the
    prefix is warm (`per_1k_requests_usd` is the cold price)."""
    cache_ttl_seconds: float | None = None
    """How long the endpoint keeps an unused prefix (None: always warm)."""

    @property
    def self_hosted(self) -> bool:
        return self.capacity_rps is not None and self.hourly_usd is not None

    def month(self, requests: float) -> Month | None:
        """The deployment's month at `requests` (None for an approach billed per token)."""
        if not self.self_hosted or self.deployment is None:
            return None
        return deployed_month(requests, self.capacity_rps, self.hourly_usd, self.deployment)

    def monthly(self, requests: float) -> float:
        """What `requests` a month cost, as deployed (NaN when the price is unknown)."""
        if not self.known:
            return float("nan")
        month = self.month(requests)
        if month is not None:
            return month.usd
        return requests / 1000 * self.effective_per_1k(requests)

    def effective_per_1k(self, requests: float) -> float:
        """Per-token rows: $/1k requests at `requests` a month, the cached prefix's discount
        weighted by the share of requests that find it warm (Poisson arrivals over the open
        hours, a prefix kept `cache_ttl_seconds`)."""
        if self.warm_per_1k_usd is None:
            return self.per_1k_requests_usd
        if self.cache_ttl_seconds is None:
            return self.warm_per_1k_usd
        hours = (self.deployment or Deployment()).open_hours
        warm = 1.0 - math.exp(-requests / (hours * 3600) * self.cache_ttl_seconds)
        return warm * self.warm_per_1k_usd + (1 - warm) * self.per_1k_requests_usd

    def first_year(self, requests_per_month: float) -> float:
        """One-off plus twelve months at `requests_per_month`."""
        return self.one_off_usd + 12 * self.monthly(requests_per_month)

    def total(self, requests: float) -> float:
        """One-off plus `requests` requests at the marginal price (NaN when unknown)."""
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
    return ApproachCost(name, kind, f"self-hosted ({hardware.name})", one_off, per_1k, basis,
                        capacity_rps=1 / seconds_per_request if seconds_per_request > 0 else None,
                        hourly_usd=hardware.hourly)


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
                        basis, capacity_rps=cost.capacity_rps, hourly_usd=cost.hourly_usd)


def endpoint(name: str, where: str, prompt_tokens: float, completion_tokens: float,
             price: ChatPrice | None, shared_tokens: float = 0.0) -> ApproachCost:
    """Prompting a model through an endpoint, at its price table entry; NaN and `known=False`
    when there is none (never $0). `shared_tokens`: the prompt prefix every request shares
    (instruction and fixed shots), billed at the entry's cached-input price when the endpoint
    caches it (its rule: a minimum prompt length, steps, a time to live).

    Example:
        1,300 prompt tokens of which 1,200 shared, OpenAI's rule (1,024 + 128-token steps):
        1,152 cached; at $0.15 in / $0.075 cached / $0.60 out per 1M and 2 answer tokens, a
        warm request costs (148 x 0.15 + 1,152 x 0.075 + 2 x 0.60) / 1e6 = $0.000110.
    """
    if price is None:
        return ApproachCost(name, "prompt", where, 0.0, float("nan"),
                            "price unknown: name the model in a price table passed with "
                            "--prices (section endpoints:)", known=False)
    per_request = (prompt_tokens * price.input + completion_tokens * price.output) / 1e6
    basis = (f"{prompt_tokens:.0f} prompt + {completion_tokens:.1f} answer tokens/request (the "
             f"endpoint's usage) at ${price.input}/${price.output} per 1M ({price.model})")
    cached = 0.0
    if price.cached_input is not None and price.caching is not None:
        cached = price.caching.cached_tokens(prompt_tokens, shared_tokens)
    if not cached:
        if shared_tokens >= 1:
            basis += (f"; the {shared_tokens:.0f} shared prompt tokens billed in full ("
                      + ("no cached-input price in the table)" if price.cached_input is None
                         else f"under the {price.caching.min_tokens:,}-token minimum the "
                              "endpoint caches)"))
        return ApproachCost(name, "prompt", where, 0.0, per_request * 1000, basis)
    warm = ((prompt_tokens - cached) * price.input + cached * price.cached_input
            + completion_tokens * price.output) / 1e6
    ttl = price.caching.ttl_seconds
    basis += (f"; {cached:.0f} of the {shared_tokens:.0f} shared prompt tokens at the cached "
              f"${price.cached_input} per 1M when warm ("
              + ("always" if ttl is None else f"kept {ttl:g} s: the share of warm requests "
                 "grows with the volume") + ")")
    return ApproachCost(name, "prompt", where, 0.0, per_request * 1000, basis,
                        warm_per_1k_usd=warm * 1000, cache_ttl_seconds=ttl)


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


VOLUMES = (1e3, 1e8)
"""The monthly volumes the cost curves span (log scale)."""


def volume_grid(points: int = 101) -> list[float]:
    lo, hi = (math.log10(v) for v in VOLUMES)
    return [10 ** (lo + (hi - lo) * i / (points - 1)) for i in range(points)]


CLOSE = 0.05
"""First-year costs within this share of each other count as equal: two self-hosted rows of
nearly the same capacity add machines at nearly the same volumes, and their curves would
otherwise cross at every step."""


def cheaper(a: ApproachCost, b: ApproachCost, requests_per_month: float) -> int:
    """-1 when `a` costs less over the first year at this volume, +1 when `b` does, 0 when
    they are within CLOSE of each other."""
    x, y = a.first_year(requests_per_month), b.first_year(requests_per_month)
    if abs(x - y) <= CLOSE * max(x, y):
        return 0
    return -1 if x < y else 1


def crossings(a: ApproachCost, b: ApproachCost) -> list[dict]:
    """Monthly volumes (within VOLUMES) where the cheaper of `a` and `b` changes, first-year
    cost (one-off + 12 months as deployed): a change counts when one is cheaper by more than
    CLOSE on each side of it, and is placed where the two are equal:
    [{"requests_per_month", "cheaper_above"}]; [] when one is cheaper (or they are equal)
    everywhere, or a price is unknown."""
    if not (a.known and b.known):
        return []
    grid = volume_grid()
    out = []
    last, last_v = 0, grid[0]
    for v in grid:
        side = cheaper(a, b, v)
        if side == 0:
            continue
        if last and side != last:
            lo, hi = last_v, v  # bisection, on the exact difference, for where they are equal
            for _ in range(40):
                mid = math.sqrt(lo * hi)
                if (a.first_year(mid) > b.first_year(mid)) == (side > 0):
                    hi = mid
                else:
                    lo = mid
            out.append({"requests_per_month": hi, "cheaper_above": b.name if side > 0 else a.name})
        last, last_v = side, v
    return out


def plot_costs(costs: list[ApproachCost], path: Path, marker: float | None = None,
               marks: list[dict] | None = None) -> None:
    """First-year cost (one-off + 12 months as deployed) against requests a month (log-log),
    one line per approach; `marks` (crossings) drawn as points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    volumes = volume_grid(121)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for c in (c for c in costs if c.known):
        style = "-" if c.self_hosted else "--"
        ax.plot(volumes, [max(c.first_year(v), 1e-4) for v in volumes], style,
                label=f"{c.name} ({c.where})")
    for m in marks or []:
        ax.plot([m["requests_per_month"]], [max(m["usd"], 1e-4)], "ko", ms=4)
    if marker:
        ax.axvline(marker, color="grey", lw=0.8, ls=":")
        ax.text(marker, ax.get_ylim()[1], " --requests-per-month", va="top", fontsize=7,
                color="grey")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("requests per month")
    ax.set_ylabel("first-year cost, USD (one-off + 12 months)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)
