"""Training on tool-calling rows: runs with a template that renders tools, refused (naming the
model and the line) with one that would drop them."""

import json
import math
import shutil

import pytest

from tests.conftest import ASSETS
from tunesmith.config import TrainConfig
from tunesmith.errors import UsageError
from tunesmith.training import train


def _config(model, data, out) -> TrainConfig:
    return TrainConfig(train_file=str(data), model=str(model), out=str(out), epochs=1,
                       quiet=True, precision="fp32")


def test_trains_on_tool_calls_with_a_tools_template(tiny_tools_model_dir, tmp_path):
    data = shutil.copy(ASSETS / "chat_tools_tiny.jsonl", tmp_path / "train.jsonl")
    result = train(_config(tiny_tools_model_dir, data, tmp_path / "run"))
    assert result.steps >= 1 and result.trained_tokens > 0
    records = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in records if "train_loss" in r]
    assert losses and all(math.isfinite(x) for x in losses)
    assert (result.final_dir / "adapter_model.safetensors").is_file()


def test_refused_on_a_template_without_tools(tiny_model_dir, tmp_path):
    data = shutil.copy(ASSETS / "chat_tools_tiny.jsonl", tmp_path / "train.jsonl")
    with pytest.raises(UsageError, match=rf"model {tiny_model_dir}'s chat template cannot render "
                       r"tool calls \(line 1 of the train file uses tools\)"):
        train(_config(tiny_model_dir, data, tmp_path / "run"))
