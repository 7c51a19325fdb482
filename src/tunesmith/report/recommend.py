"""The recommendation rule, and the paired bootstrap it rests on.

RULE (printed in every report):
  1. Quality: the approach with the best task metric on the test split wins on quality if, against
     every other approach, the 95% paired-bootstrap interval of the metric difference excludes 0.
  2. Otherwise the approaches the best one does not beat significantly are tied on quality, and
     the cheapest of them over the first year at --requests-per-month (one-off cost plus twelve
     months; a self-hosted approach as deployed, `cost.Deployment`) is recommended.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from tunesmith.cost import ApproachCost
from tunesmith.data.taskfile import TaskSpec
from tunesmith.evaluation.agreement import non_inferiority
from tunesmith.evaluation.metrics import mean_sampler, paired_bootstrap
from tunesmith.evaluation.runner import EvalResult
from tunesmith.evaluation.tasks import get_task

RULE = (
    "Quality first: the approach with the best {metric} on the test split is recommended if, "
    "against every other approach, the 95% paired-bootstrap confidence interval of the "
    "difference excludes zero. Otherwise the approaches it does not beat significantly are "
    "tied on quality, and the one with the lowest first-year cost (one-off cost + 12 months at "
    "{volume:,} requests/month; a self-hosted approach as deployed: its machines sized for the "
    "peak and billed idle or not) is recommended."
)


Z_95, Z_80 = 1.959964, 0.841621
"""Normal quantiles: a two-sided 5% test, and 80% power."""


@dataclass
class Comparison:
    best: str
    other: str
    metric: str
    diff: float
    low: float
    high: float
    n: int = 0
    """Test examples the difference was measured on."""

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0

    @property
    def needed_n(self) -> int | None:
        """Test examples that would detect this gap with 80% power (a two-sided 5% test), from
        the bootstrap's spread scaled as 1/sqrt(n); None when there is no gap to detect."""
        se = (self.high - self.low) / (2 * Z_95)
        if not self.n or self.diff == 0 or se <= 0:
            return None
        return math.ceil(self.n * ((Z_95 + Z_80) * se / abs(self.diff)) ** 2)

    def to_dict(self) -> dict:
        return {**asdict(self), "significant": self.significant, "needed_n": self.needed_n}


@dataclass
class Recommendation:
    choice: str
    reason: str
    rule: str
    comparisons: list[Comparison]
    first_year_cost: dict[str, float]

    def to_dict(self) -> dict:
        return {"choice": self.choice, "reason": self.reason, "rule": self.rule,
                "comparisons": [c.to_dict() for c in self.comparisons],
                "first_year_cost_usd": self.first_year_cost}


def sampler(result: EvalResult, labels: list[str]) -> Callable[[np.ndarray], float]:
    """The task metric of `result` on a resample of its examples (the task's own sampler)."""
    spec = TaskSpec(result.task, list(labels))  # type: ignore[arg-type]
    return get_task(result.task).sampler(result.gold, result.predictions, spec)


def recommend(results: list[EvalResult], costs: dict[str, ApproachCost], labels: list[str],
              requests_per_month: int, seed: int = 0,
              judged: dict[str, list[float]] | None = None,
              judged_metric: str = "") -> Recommendation:
    """Apply RULE to approaches evaluated on the same test examples.

    Args:
        judged: per approach, a trusted judge's per-input scores (win 1, tie 0.5, loss 0, or
            grades), on the same inputs for every approach: they are the task metric then,
            named `judged_metric`.
    """
    task = get_task(results[0].task)
    metric, key = task.metric_name, task.metric
    score = {r.name: r.score for r in results}
    samplers = {}
    n = results[0].n
    if judged:
        metric, key = judged_metric, "judged"
        score = {r.name: float(np.mean(judged[r.name])) for r in results}
        samplers = {r.name: mean_sampler(judged[r.name]) for r in results}
        n = len(next(iter(judged.values())))
    else:
        samplers = {r.name: sampler(r, labels) for r in results}
    rule = RULE.format(metric=metric, volume=requests_per_month)
    best = max(results, key=lambda r: score[r.name])
    best_score = score[best.name]
    comparisons = []
    for other in results:
        if other is best:
            continue
        ci = paired_bootstrap(lambda idx, o=other: (samplers[best.name](idx),
                                                    samplers[o.name](idx)), n, seed=seed)
        comparisons.append(Comparison(best.name, other.name, key, ci["diff"], ci["low"],
                                      ci["high"], n))
    yearly = {name: c.first_year(requests_per_month) for name, c in costs.items()}
    if all(c.significant for c in comparisons):
        reason = (f"{best.name} has the best {metric} "
                  f"({best_score:.3f}) and beats every other approach beyond the 95% interval.")
        return Recommendation(best.name, reason, rule, comparisons, yearly)
    tied = [best.name] + [c.other for c in comparisons if not c.significant]
    priced = [name for name in tied if name in costs and costs[name].known]
    unknown = [name for name in tied if name not in priced]
    if not priced:  # no tied approach has a price: quality alone decides
        reason = (f"{best.name} has the best {metric} "
                  f"({best_score:.3f}); it does not beat {', '.join(tied[1:])} significantly, and "
                  "none of them has a known price to break the tie.")
        return Recommendation(best.name, reason, rule, comparisons, yearly)
    choice = min(priced, key=lambda name: yearly[name])
    reason = (f"{best.name} has the best {metric} ({best_score:.3f}) "
              f"but does not beat {', '.join(t for t in tied if t != best.name)} significantly; "
              f"among those, {choice} costs least over the first year "
              f"(${yearly[choice]:,.2f})"
              + (f" (price unknown, so not compared: {', '.join(unknown)})." if unknown else ".")
              + power_words(comparisons, n))
    return Recommendation(choice, reason, rule, comparisons, yearly)


def power_words(comparisons: list[Comparison], n: int) -> str:
    """What the test split cannot tell, in words: for the closest gap that is not significant,
    how many test examples would detect it with 80% power."""
    open_gaps = [c for c in comparisons if not c.significant and c.needed_n]
    if not open_gaps:
        return ""
    c = min(open_gaps, key=lambda c: c.needed_n)
    words = (f" The test split cannot tell them apart: {c.best} leads {c.other} by "
             f"{c.diff:+.3f} on {n} test examples; about {c.needed_n:,} would detect a gap that "
             "size with 80% power")
    if c.needed_n > n:
        words += ("; label more test examples, or run `tunesmith curve` to see whether more "
                  "training data widens the gap")
    return words + "."


MATCH_RULE = (
    "Match the incumbent: among the approaches shown non-inferior to {incumbent} on the test "
    "split's {metric} (the one-sided 95% lower bound of the paired-bootstrap difference, "
    "approach minus incumbent, above -{margin:g}), the one with the lowest first-year cost "
    "(one-off cost + 12 months at {volume:,} requests/month) is recommended; when none is, none "
    "is recommended."
)


def recommend_match(results: list[EvalResult], incumbent: EvalResult,
                    costs: dict[str, ApproachCost], labels: list[str], requests_per_month: int,
                    margin: float, seed: int = 0) -> tuple[Recommendation, list[dict]]:
    """`--goal match-incumbent`: the cheapest approach not worse than `incumbent` by more than
    `margin` on the gold metric. Returns the recommendation ("none" when no approach is shown
    non-inferior) and each approach's test."""
    task = get_task(incumbent.task)
    rule = MATCH_RULE.format(incumbent=incumbent.name, metric=task.metric_name, margin=margin,
                             volume=requests_per_month)
    reference = sampler(incumbent, labels)
    tests = []
    for r in results:
        test = non_inferiority(sampler(r, labels), reference, r.n, margin, seed=seed)
        tests.append({"name": r.name, **test})
    yearly = {name: c.first_year(requests_per_month) for name, c in costs.items()}
    passed = [t["name"] for t in tests if t["non_inferior"]]
    priced = [name for name in passed if name in costs and costs[name].known]
    if not passed:
        best = max(tests, key=lambda t: t["lower"])
        reason = (f"no approach is shown non-inferior to {incumbent.name} at margin {margin:g}: "
                  f"the closest, {best['name']}, differs by {best['diff']:+.3f} {task.metric_name} "
                  f"with a one-sided 95% lower bound of {best['lower']:+.3f}. Label more test "
                  "examples to narrow the interval, or try a larger model.")
        return Recommendation("none", reason, rule, [], yearly), tests
    choice = min(priced, key=lambda name: yearly[name]) if priced else passed[0]
    chosen = next(t for t in tests if t["name"] == choice)
    reason = (f"{choice} is shown non-inferior to {incumbent.name} at margin {margin:g} "
              f"({task.metric_name} {chosen['diff']:+.3f}, one-sided 95% lower bound "
              f"{chosen['lower']:+.3f}); of the {len(passed)} that are, it costs least over the "
              f"first year" + (f" (${yearly[choice]:,.2f})." if choice in priced else
                               " (no price known for any of them)."))
    return Recommendation(choice, reason, rule, [], yearly), tests
