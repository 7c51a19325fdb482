import pytest

from tunesmith.hparams import auto_epochs, billed_tokens


@pytest.mark.parametrize("n, epochs", [
    (1, 25), (4, 25), (10, 10), (20, 5), (33, 3), (34, 3), (500, 3), (8333, 3), (8334, 2),
    (12_500, 2), (12_501, 1), (100_000, 1),
])
def test_auto_epochs_follow_openais_rule(n, epochs):
    assert auto_epochs(n) == epochs


def test_billed_tokens_cap_each_example():
    assert billed_tokens([100, 20_000], 3) == (100 + 16_385) * 3


def test_heads_learn_at_five_times_the_lm_rate():
    from tunesmith.config import TrainConfig

    for method in ("lora", "full"):
        lm = TrainConfig(method=method).resolve(400).lr
        assert TrainConfig(method=method, head="classifier").resolve(400).lr == \
            pytest.approx(5 * lm)
        assert TrainConfig(method=method, head="token", lr=1e-3).resolve(400).lr == 1e-3
