"""Cost arithmetic against worked examples."""

import math
from dataclasses import replace

import pytest

from tunesmith.cost import (
    Deployment,
    break_even,
    cheaper,
    crossings,
    deployed_month,
    endpoint,
    openai,
    self_hosted,
    volume_grid,
)
from tunesmith.errors import UnusableInputError, UsageError
from tunesmith.evaluation.runner import EvalResult
from tunesmith.evaluation.throughput import Throughput, save_capacity
from tunesmith.pricing import (
    ChatPrice,
    HardwarePrice,
    Machine,
    OpenAIPrice,
    PromptCaching,
    load_prices,
)
from tunesmith.report.costs import machine_pricing, price_approaches

MINI = OpenAIPrice("gpt-4o-mini", training=3.0, base_input=0.15, base_output=0.60,
                   ft_input=0.30, ft_output=1.20)
BOX = HardwarePrice("box", 0.0893)


def test_self_hosted_worked_example():
    c = self_hosted("zero-shot", "prompt", 0.5, BOX)
    assert c.per_1k_requests_usd == pytest.approx(500 / 3600 * 0.0893)  # $0.0124
    ft = self_hosted("ft", "fine-tune", 0.25, BOX, training_seconds=1800)
    assert ft.one_off_usd == pytest.approx(0.5 * 0.0893)
    assert ft.total(10_000) == pytest.approx(ft.one_off_usd + 10 * ft.per_1k_requests_usd)


def test_openai_worked_example():
    few = openai("5-shot", "prompt", 500, 5, MINI)
    assert few.per_1k_requests_usd == pytest.approx((500_000 * 0.15 + 5_000 * 0.60) / 1e6)  # $0.078
    ft = openai("ft", "fine-tune", 60, 5, MINI, training_tokens=300_000)
    assert ft.one_off_usd == pytest.approx(0.9)
    assert ft.per_1k_requests_usd == pytest.approx((60_000 * 0.30 + 5_000 * 1.20) / 1e6)  # $0.024


def test_break_even_volume():
    few = openai("5-shot", "prompt", 500, 5, MINI)  # $0.078 / 1k
    ft = openai("ft", "fine-tune", 60, 5, MINI, training_tokens=300_000)  # $0.9 + $0.024 / 1k
    volume = break_even(few, ft)
    assert volume == pytest.approx(0.9 / (0.078 - 0.024) * 1000)  # ~16,667 requests
    assert few.total(volume) == pytest.approx(ft.total(volume))
    assert break_even(ft, few) is None  # few-shot never pays back against the fine-tune


# ---- deployments: what a team is billed, idle machines included ---------------------------------


HOURS = 24 * 365.25 / 12  # open hours a month at 24 h/day


def test_a_dedicated_month_is_at_least_one_machine_all_month():
    d = Deployment()  # 24 h/day, peak 3x the average, sized to 60% of capacity
    for requests in (1_000, 100_000):
        month = deployed_month(requests, capacity_rps=10.0, hourly=0.0893, d=d)
        assert month.machines == 1 and month.usd == pytest.approx(HOURS * 0.0893)  # $65.23
    assert deployed_month(1_000, 10.0, 0.0893, d).per_1k_requests_usd == pytest.approx(65.23,
                                                                                     rel=1e-3)
    # 100M a month: 38.0 requests/s on average, 114.1 at the peak, 6 per machine at 60%
    month = deployed_month(100_000_000, 10.0, 0.0893, d)
    peak = 100_000_000 / (HOURS * 3600) * 3
    assert month.machines == -(-peak // 6) == 20
    assert month.usd == pytest.approx(20 * HOURS * 0.0893)


def test_the_machine_count_steps_at_capacity():
    d = Deployment(peak_to_average=1.0, target_utilization=1.0)
    per_machine = 10.0 * HOURS * 3600  # requests a month one machine can take at full use
    assert deployed_month(per_machine, 10.0, 1.0, d).machines == 1
    assert deployed_month(per_machine * 1.01, 10.0, 1.0, d).machines == 2
    assert deployed_month(per_machine * 2, 10.0, 1.0, d).machines == 2
    assert deployed_month(per_machine * 2.01, 10.0, 1.0, d).machines == 3
    half_day = Deployment(peak_to_average=1.0, target_utilization=1.0, hours_per_day=12)
    month = deployed_month(per_machine, 10.0, 1.0, half_day)  # the same traffic in half the hours
    assert month.machines == 2 and month.billed_hours == pytest.approx(2 * HOURS / 2)


def test_serverless_is_busy_time_plus_cold_starts():
    d = Deployment(billing="serverless", cold_start_seconds=30, scale_down_seconds=60)
    # 1,000 requests a month: ~0.0004 a second, so nearly every one finds no warm machine
    month = deployed_month(1_000, capacity_rps=10.0, hourly=3.6, d=d)
    busy = 1_000 / 10.0
    assert month.machines == 0 and month.scale_ups == pytest.approx(1_000, rel=0.03)
    assert month.usd == pytest.approx((busy + month.scale_ups * 30) / 3600 * 3.6)
    # 100M a month: a machine is always warm, the bill is the busy time
    month = deployed_month(100_000_000, 10.0, 3.6, d)
    assert month.scale_ups < 1e-6 and month.usd == pytest.approx(10_000_000 / 3600 * 3.6)


def test_shared_by_4_quarters_the_fixed_cost():
    one = deployed_month(1_000, 10.0, 0.0893, Deployment())
    four = deployed_month(1_000, 10.0, 0.0893, Deployment(shared_by=4))
    assert four.usd == pytest.approx(one.usd / 4)


def test_the_cheaper_of_a_hosted_row_and_a_deployed_fine_tune_crosses_once():
    hosted = openai("hosted 5-shot", "prompt", 500, 5, MINI)  # $0.078 / 1k requests
    ft = replace(self_hosted("ft", "fine-tune", 0.1, BOX, training_seconds=600),
                 deployment=Deployment())
    [point] = crossings(hosted, ft)
    assert point["cheaper_above"] == "ft"
    v = point["requests_per_month"]  # one machine ($65.23/month) against $0.078 per 1k
    assert 0.99 * 836_000 < v < 1.01 * 837_000
    assert hosted.first_year(v * 0.9) < ft.first_year(v * 0.9)
    assert hosted.first_year(v * 1.1) > ft.first_year(v * 1.1)


@pytest.mark.parametrize(("values", "flag"), [
    ({"peak_to_average": 0}, "--peak-to-average"), ({"peak_to_average": -1}, "--peak-to-average"),
    ({"target_utilization": 0}, "--target-utilization"),
    ({"target_utilization": 1.5}, "--target-utilization"),
    ({"hours_per_day": 25}, "--hours-per-day"),
    ({"shared_by": 0}, "--shared-by"), ({"billing": "spot"}, "--deployment"),
])
def test_impossible_deployments_are_refused_naming_the_flag(values, flag):
    with pytest.raises(UsageError, match=flag):
        Deployment(**values)


def test_the_power_figure_matches_the_normal_approximation():
    """Two approaches that differ on a known number of examples: the bootstrap's spread scaled
    to 80% power agrees with the formula for a paired difference of proportions."""
    from tunesmith.evaluation.metrics import mean_sampler, paired_bootstrap
    from tunesmith.report.recommend import Z_80, Z_95, Comparison

    n, only_a, only_b = 200, 14, 6  # a right where b is wrong on 14, the reverse on 6
    a = [1.0] * only_a + [0.0] * only_b + [1.0] * 100 + [0.0] * (n - 120)
    b = [0.0] * only_a + [1.0] * only_b + [1.0] * 100 + [0.0] * (n - 120)
    sa, sb = mean_sampler(a), mean_sampler(b)
    ci = paired_bootstrap(lambda idx: (sa(idx), sb(idx)), n, resamples=4000, seed=1)
    c = Comparison("a", "b", "accuracy", ci["diff"], ci["low"], ci["high"], n)
    assert not c.significant and c.diff == pytest.approx(0.04)
    variance = (only_a + only_b) / n - 0.04 ** 2  # per example, of the paired difference
    expected = (Z_95 + Z_80) ** 2 * variance / 0.04 ** 2
    assert c.needed_n == pytest.approx(expected, rel=0.15)  # ~470 examples


# ---- cached and shared prefixes ----------------------------------------------------------------


OPENAI_CACHE = PromptCaching(min_tokens=1024, increment=128, ttl_seconds=300)
CACHED_MINI = ChatPrice("gpt-4o-mini", 0.15, 0.60, cached_input=0.075, caching=OPENAI_CACHE)


def test_a_shared_prefix_is_billed_at_the_cached_price_in_openais_steps():
    assert OPENAI_CACHE.cached_tokens(1300, 1200) == 1152  # 1,024 + one 128-token step
    assert OPENAI_CACHE.cached_tokens(900, 850) == 0  # under the minimum: nothing cached
    c = replace(endpoint("8-shot", "OpenAI", 1300, 2, CACHED_MINI, shared_tokens=1200),
                deployment=Deployment())
    cold = (1300 * 0.15 + 2 * 0.60) / 1e6 * 1000
    warm = (148 * 0.15 + 1152 * 0.075 + 2 * 0.60) / 1e6 * 1000
    assert c.per_1k_requests_usd == pytest.approx(cold)
    assert c.warm_per_1k_usd == pytest.approx(warm)
    # The share of warm requests grows with the volume: 1,000/month at 24 h/day is one request
    # every 44 minutes (a 5-minute cache is nearly always cold); 10M/month is 3.8 a second.
    rate = 1_000 / (HOURS * 3600)
    hit = 1 - math.exp(-rate * 300)
    assert c.monthly(1_000) == pytest.approx(hit * warm + (1 - hit) * cold)
    assert c.monthly(10_000_000) == pytest.approx(10_000 * warm, rel=1e-6)
    short = endpoint("zero-shot", "OpenAI", 90, 2, CACHED_MINI, shared_tokens=40)
    assert short.warm_per_1k_usd is None and "minimum" in short.basis
    uncached = endpoint("x", "e", 1300, 2, ChatPrice("m", 0.15, 0.60), shared_tokens=1200)
    assert uncached.warm_per_1k_usd is None and "no cached-input price" in uncached.basis


def test_the_shipped_table_has_openais_cached_prices_and_rule():
    prices = load_prices()
    mini = prices.chat_price("gpt-4o-mini")
    assert mini.cached_input == 0.075 and mini.caching.min_tokens == 1024
    assert prices.fine_tuned_price("gpt-4o-mini").cached_input == 0.15
    assert prices.openai_caching.source.startswith("https://")
    assert prices.chat_price("gpt-3.5-turbo").cached_input is None  # the page lists none


def test_a_prefix_caching_engine_runs_the_shared_prompt_once():
    r = EvalResult("8-shot", "prompt", 8, "classification", "m", "score", 10, {"macro_f1": 0.5},
                   0, 0.1, 1000.0, 3.0, shared_prompt_tokens=900.0)
    rates = Throughput(1000.0, 50.0, 16, 128, 16)
    whole, _ = price_approaches([r], load_prices(), BOX, {"m": rates})
    cached, _ = price_approaches([r], load_prices(), BOX, {"m": rates},
                                 deployment=Deployment(engine="vllm"))
    assert whole["8-shot"].capacity_rps == pytest.approx(1 / (1000 / 1000 + 3 / 1000))
    assert cached["8-shot"].capacity_rps == pytest.approx(1 / (100 / 1000 + 3 / 1000))
    assert "no prefix cache" in whole["8-shot"].basis and "run once" in cached["8-shot"].basis


# ---- which machine type, measured where --------------------------------------------------------


HERE = Machine("cpu", "cpu", 2)


def test_this_machine_prices_as_the_entry_that_describes_it():
    prices = load_prices()
    pricing = machine_pricing(prices, Deployment(), "m", HERE)
    assert pricing.hardware.name == "cpu-2vcpu" and pricing.measured
    assert machine_pricing(prices, Deployment(), "m", Machine("cpu", "cpu", 8)
                           ).hardware.name == "cpu-8vcpu"
    with pytest.raises(UsageError, match="NVIDIA H200.*--machine"):  # never silently an L4
        machine_pricing(prices, Deployment(), "m", Machine("gpu", "NVIDIA H200"))
    with pytest.raises(UsageError, match="--machine gpu-b200"):
        machine_pricing(prices, Deployment(machine="gpu-b200"), "m", HERE)


def test_a_machine_type_not_measured_has_no_price_until_its_capacity_is_given(tmp_path):
    prices = load_prices()
    r = EvalResult("fine-tuned (lora)", "fine-tune", 0, "classification", "m", "score", 10,
                   {"macro_f1": 0.5}, 0, 0.1, 100.0, 3.0)
    here_rates = Throughput(1000.0, 50.0, 16, 128, 16)
    gpu = machine_pricing(prices, Deployment(machine="gpu-l4"), "m", HERE)
    assert not gpu.measured and "capacity not measured on gpu-l4" in gpu.note
    costs, _ = price_approaches([r], prices, gpu.hardware, {"m": here_rates}, machine=gpu)
    row = costs[r.name]
    assert not row.known and math.isnan(row.monthly(1_000)) and "not measured" in row.basis

    path = tmp_path / "l4.json"
    save_capacity(path, Throughput(20_000.0, 900.0, 16, 128, 16), "m", "gpu-l4",
                  Machine("gpu", "NVIDIA L4"))
    measured = machine_pricing(prices, Deployment(machine="gpu-l4", capacity=str(path)), "m", HERE)
    costs, _ = price_approaches([r], prices, measured.hardware, {"m": here_rates},
                                machine=measured)
    row = costs[r.name]
    assert row.known and row.capacity_rps == pytest.approx(1 / (100 / 20_000 + 3 / 20_000))
    assert row.hourly_usd == 0.8048 and str(path) in row.basis

    for machine, model, says in (("gpu-a10g", "m", "not --machine gpu-a10g"),
                                 ("gpu-l4", "other", "not 'other'")):
        with pytest.raises(UnusableInputError, match=says) as err:
            machine_pricing(prices, Deployment(machine=machine, capacity=str(path)), model, HERE)
        assert str(path) in str(err.value)


def test_two_rows_of_nearly_the_same_capacity_do_not_cross_at_every_machine_step():
    a = replace(self_hosted("zero-shot", "prompt", 0.0450, BOX), deployment=Deployment())
    b = replace(self_hosted("ft", "fine-tune", 0.0440, BOX, training_seconds=100),
                deployment=Deployment())
    # their machine counts step at slightly different volumes: the exact difference changes
    # sign at every step above ~10M a month, by less than CLOSE except where b has a machine
    # fewer: no crossing, b cheaper there, equal elsewhere
    grid = volume_grid()
    flips = sum((a.first_year(x) < b.first_year(x)) != (a.first_year(y) < b.first_year(y))
                for x, y in zip(grid, grid[1:]))
    assert flips >= 4 and crossings(a, b) == []
    assert {cheaper(a, b, v) for v in grid} == {0, 1}
