import pytest

from tunesmith.errors import UnusableInputError
from tunesmith.pricing import load_prices


def test_shipped_table_is_dated_and_sourced():
    prices = load_prices()
    assert prices.as_of and prices.sources["openai"].startswith("https://")
    mini = prices.default_openai
    assert mini.model == "gpt-4o-mini-2024-07-18"
    assert mini.ft_input > mini.base_input  # fine-tuned inference costs more on OpenAI
    assert prices.self_hosted["cpu-2vcpu"].hourly > 0


def test_override_file_problems_are_all_named(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("openai:\n  m1: {training: x}\nself_hosted:\n  box: {hourly: -1}\n")
    with pytest.raises(UnusableInputError) as err:
        load_prices(path)
    message = str(err.value)
    assert "openai.m1" in message and "self_hosted.box.hourly" in message


def test_override_file_is_used(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("as_of: '2026-01-01'\nopenai:\n  m: {training: 1, base_input: 1, base_output: 2,"
                    " ft_input: 3, ft_output: 4}\n")
    prices = load_prices(path)
    assert prices.as_of == "2026-01-01" and prices.default_openai.ft_output == 4.0
