import numpy as np
import pytest

from tunesmith.studies.curve_fit import backtest, fit_curve, needed_interval


def test_the_fit_recovers_a_known_power_law_and_inverts_it():
    n = np.array([50, 100, 200, 400, 800, 1600], dtype=float)
    m = 0.9 - 0.8 * n ** -0.5
    fit, fits = fit_curve(n, m)
    assert fit.form == "power law" and len(fits) == 2
    assert fit.params["c"] == pytest.approx(0.9, abs=1e-3)
    assert fit.params["b"] == pytest.approx(0.5, abs=1e-2)
    assert fit.needed(0.88, 16_000) == pytest.approx((0.8 / 0.02) ** 2, rel=0.02)
    assert fit.needed(0.95, 16_000) is None  # above the ceiling the curve saturates at


def test_a_log_linear_curve_is_fitted_as_one():
    n = np.array([50, 100, 200, 400, 800], dtype=float)
    m = 0.3 + 0.05 * np.log(n) + np.array([0.002, -0.002, 0.001, -0.001, 0.0])
    fit, _ = fit_curve(n, m)
    assert fit.form == "log-linear" and fit.params["b"] == pytest.approx(0.05, abs=0.005)
    assert fit.needed(0.7, 8000) == pytest.approx(np.exp((0.7 - fit.params["a"]) /
                                                         fit.params["b"]))


def test_the_backtest_leaves_out_the_largest_size():
    n = np.array([400, 50, 100, 200], dtype=float)  # unsorted on purpose
    m = 0.9 - 0.8 * n ** -0.5
    m[0] = 0.5  # the largest point is off the curve: only a fit without it predicts ~0.86
    bt = backtest(n, m, "power law")
    assert bt["n"] == 400 and bt["fitted_on"] == [50, 100, 200]
    assert bt["measured"] == 0.5 and bt["predicted"] == pytest.approx(0.86, abs=0.01)


def test_needed_interval_brackets_the_estimate():
    n = np.array([50, 100, 200, 400, 800, 1600], dtype=float)
    m = 0.9 - 0.8 * n ** -0.5
    fit, _ = fit_curve(n, m)
    lo, hi = needed_interval(fit, n, m, m - 0.02, m + 0.02, 0.85, 16_000, draws=100)
    assert lo is not None and lo < fit.needed(0.85, 16_000) and (hi is None or hi > lo)
