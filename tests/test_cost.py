"""Cost arithmetic against worked examples."""

import pytest

from tunesmith.cost import break_even, openai, self_hosted
from tunesmith.pricing import HardwarePrice, OpenAIPrice

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
