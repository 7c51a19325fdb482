"""The learning curve: fits, their inversion ("examples needed"), and a backtest.

Two forms are fitted to the measured points (n, metric):

    log-linear       m(n) = a + b ln n
    power law        m(n) = c - a n^(-b)      (saturating at c <= the metric's maximum, 1)

and the one with the lower corrected Akaike criterion (AICc, which charges the power law its
third parameter) is used; with fewer than 5 points the power law cannot be charged fairly and
the log-linear form is used. The interval on "examples needed" comes from refitting on points
redrawn within their bootstrap intervals (parametric, 400 draws).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

HORIZON = 10
"""Extrapolate at most this many times the largest measured size."""


@dataclass
class Fit:
    form: str
    """`log-linear` or `power law`."""
    params: dict[str, float]
    rmse: float
    aicc: float | None

    def predict(self, n: float | np.ndarray) -> np.ndarray:
        n = np.asarray(n, dtype=float)
        p = self.params
        if self.form == "log-linear":
            return p["a"] + p["b"] * np.log(n)
        return p["c"] - p["a"] * n ** (-p["b"])

    def needed(self, target: float, horizon: float) -> float | None:
        """The smallest n (up to `horizon`) where the curve reaches `target`; None if it
        does not."""
        p = self.params
        if self.form == "log-linear":
            if p["b"] <= 0 or (target - p["a"]) / p["b"] > math.log(horizon):
                return None
            n = math.exp((target - p["a"]) / p["b"])
        else:
            if target >= p["c"] or p["a"] <= 0 or p["b"] <= 0:
                return None
            log_n = (math.log(p["a"]) - math.log(p["c"] - target)) / p["b"]
            if log_n > math.log(horizon):
                return None
            n = math.exp(log_n)
        return n if n <= horizon else None

    def to_dict(self) -> dict:
        return {"form": self.form, "params": {k: round(v, 6) for k, v in self.params.items()},
                "rmse": round(self.rmse, 6),
                "aicc": None if self.aicc is None else round(self.aicc, 3)}


def _aicc(rss: float, n: int, k: int) -> float | None:
    if n - k - 1 <= 0:
        return None
    return n * math.log(max(rss, 1e-12) / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def fit_log_linear(n: np.ndarray, m: np.ndarray) -> Fit:
    b, a = np.polyfit(np.log(n), m, 1)
    fit = Fit("log-linear", {"a": float(a), "b": float(b)}, 0.0, None)
    rss = float(((fit.predict(n) - m) ** 2).sum())
    fit.rmse, fit.aicc = math.sqrt(rss / len(n)), _aicc(rss, len(n), 2)
    return fit


def fit_power_law(n: np.ndarray, m: np.ndarray, ceiling: float = 1.0) -> Fit | None:
    from scipy.optimize import curve_fit

    def f(x, c, a, b):
        return c - a * x ** (-b)

    best = None
    for b0 in (0.3, 0.6, 1.0):
        c0 = min(ceiling, float(m.max()) + 0.05)
        a0 = max(1e-3, (c0 - float(m.min())) * float(n.min()) ** b0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p, _ = curve_fit(f, n, m, p0=(c0, a0, b0), bounds=([0, 0, 1e-3], [ceiling, np.inf, 3]),
                                 maxfev=20000)
        except (RuntimeError, ValueError):
            continue
        rss = float(((f(n, *p) - m) ** 2).sum())
        if best is None or rss < best[0]:
            best = (rss, p)
    if best is None:
        return None
    rss, (c, a, b) = best
    return Fit("power law", {"c": float(c), "a": float(a), "b": float(b)},
               math.sqrt(rss / len(n)), _aicc(rss, len(n), 3))


def fit_curve(n: list[int] | np.ndarray, m: list[float] | np.ndarray,
              ceiling: float = 1.0) -> tuple[Fit, list[Fit]]:
    """The chosen fit and every fit tried."""
    n, m = np.asarray(n, dtype=float), np.asarray(m, dtype=float)
    fits = [fit_log_linear(n, m)]
    power = fit_power_law(n, m, ceiling) if len(n) >= 3 else None
    if power is not None:
        fits.append(power)
    chosen = fits[0]
    if power is not None and power.aicc is not None and fits[0].aicc is not None \
            and power.aicc < fits[0].aicc:
        chosen = power
    return chosen, fits


def needed_interval(
    fit: Fit, n: np.ndarray, m: np.ndarray, low: np.ndarray, high: np.ndarray, target: float,
    horizon: float, draws: int = 400, seed: int = 0, ceiling: float = 1.0,
) -> tuple[float | None, float | None]:
    """2.5th and 97.5th percentiles of "examples needed" over refits to points drawn within
    their 95% intervals (normal, sd = interval width / 3.92). A draw that never reaches the
    target counts as beyond the horizon (the high end is then None: not within the horizon)."""
    rng = np.random.default_rng(seed)
    sd = np.maximum((np.asarray(high) - np.asarray(low)) / 3.92, 1e-6)
    found = []
    for _ in range(draws):
        drawn = np.clip(rng.normal(m, sd), 0.0, ceiling)
        if fit.form == "log-linear":
            refit = fit_log_linear(n, drawn)
        else:
            refit = fit_power_law(n, drawn, ceiling) or fit_log_linear(n, drawn)
        value = refit.needed(target, horizon)
        found.append(math.inf if value is None else value)
    lo, hi = np.percentile(found, [2.5, 97.5], method="nearest")  # inf: never reached
    return (None if math.isinf(lo) else float(lo)), (None if math.isinf(hi) else float(hi))


def backtest(n: np.ndarray, m: np.ndarray, form: str, ceiling: float = 1.0) -> dict | None:
    """Fit the chosen form without the largest size, predict it, and compare."""
    order = np.argsort(n)
    n, m = np.asarray(n, dtype=float)[order], np.asarray(m, dtype=float)[order]
    if len(n) < 3:
        return None
    head_n, head_m = n[:-1], m[:-1]
    fit = (fit_power_law(head_n, head_m, ceiling) if form == "power law" else None) \
        or fit_log_linear(head_n, head_m)
    predicted = float(fit.predict(n[-1]))
    return {"n": int(n[-1]), "predicted": round(predicted, 4), "measured": round(float(m[-1]), 4),
            "error": round(predicted - float(m[-1]), 4), "fitted_on": [int(x) for x in head_n],
            "form": fit.form}
