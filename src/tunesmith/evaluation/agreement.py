"""How a row compares with an incumbent model's recorded answers on the same inputs.

    agreement          how closely an approach answers as the incumbent did (label agreement
                       and Cohen's kappa, entity F1 against its entities, token F1 against its
                       answers), with a 95% bootstrap interval over the inputs
    non_inferiority    whether an approach is shown no worse than the incumbent by more than a
                       margin on the gold metric: the one-sided 95% lower bound of the paired
                       bootstrap difference (candidate - incumbent) lies above -margin
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tunesmith.data.taskfile import TaskSpec
from tunesmith.evaluation.tasks import EvalTask

RESAMPLES = 2000


def agreement(task: EvalTask, reference: list, pred: list, spec: TaskSpec, *,
              resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """`pred` against `reference` (the incumbent's predictions on the same inputs)."""
    from sklearn.metrics import cohen_kappa_score  # scikit-learn: imported when used

    sampler = task.agreement(reference, pred, spec)
    n = len(pred)
    rng = np.random.default_rng(seed)
    values = [sampler(rng.integers(0, n, n)) for _ in range(resamples)] if n else [0.0]
    out = {"measure": task.agreement_name, "value": round(sampler(np.arange(n)), 4),
           "low": round(float(np.percentile(values, 2.5)), 4),
           "high": round(float(np.percentile(values, 97.5)), 4)}
    if task.labelled:
        kappa = cohen_kappa_score([str(r) for r in reference], [str(p) for p in pred])
        out["kappa"] = None if np.isnan(kappa) else round(float(kappa), 4)
    return out


def non_inferiority(candidate: Callable[[np.ndarray], float],
                    incumbent: Callable[[np.ndarray], float], n: int, margin: float, *,
                    resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """Is `candidate` (a sampler of its gold metric) not worse than `incumbent` by more than
    `margin`? The paired bootstrap of the difference over the same `n` inputs; the one-sided
    95% lower bound (5th percentile) must lie above -margin.

    Example: a candidate 1 point below the incumbent whose difference spans 3 points is not
    shown non-inferior at margin 0.02; one 0.5 point above with a tight interval is.
    """
    rng = np.random.default_rng(seed)
    everything = np.arange(n)
    diff = candidate(everything) - incumbent(everything)
    diffs = np.empty(resamples)
    for i in range(resamples):
        idx = rng.integers(0, n, n)
        diffs[i] = candidate(idx) - incumbent(idx)
    lower = float(np.percentile(diffs, 5))
    return {"diff": round(float(diff), 4), "lower": round(lower, 4), "margin": margin,
            "non_inferior": lower > -margin}
