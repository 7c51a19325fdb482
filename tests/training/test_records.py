"""metrics.jsonl read back after a kill: a torn last line is dropped, a resume keeps the rest."""

import json
import logging

import pytest

from tunesmith.errors import UnusableInputError
from tunesmith.training.records import MetricsLog, read_metrics, training_time

STEPS = [{"step": 1, "train_loss": 2.0, "tokens": 100, "tokens_per_s": 50.0},
         {"step": 2, "train_loss": 1.5, "tokens": 120, "tokens_per_s": 60.0},
         {"step": 2, "full_valid_loss": 1.4}]


def test_a_torn_last_line_is_dropped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in STEPS) + '{"step": 3, "train_lo')
    with caplog.at_level(logging.WARNING):
        assert read_metrics(path) == STEPS
    assert "line 4 is cut short" in caplog.text
    # a resume from step 2 keeps steps 1-2 and rewrites the file whole
    log = MetricsLog(path, keep_until_step=2)
    assert log.records == STEPS and read_metrics(path) == STEPS


def test_a_broken_line_before_the_last_is_an_error_naming_it(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(STEPS[0]) + "\nnot json\n" + json.dumps(STEPS[1]) + "\n")
    with pytest.raises(UnusableInputError, match=r"metrics.jsonl:2: not a metrics record") as err:
        read_metrics(path)
    assert str(path) in str(err.value)


def test_training_time_is_the_steps_measured_time():
    assert training_time(STEPS) == (pytest.approx(100 / 50 + 120 / 60), 220)
