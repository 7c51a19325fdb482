"""`train --report-to`: one tiny CLI run reports to every installed tracker, and each tracker's
own files hold exactly metrics.jsonl's values; missing packages and bad names are refused before
training; the hook wrapper starts trackers on rank 0's first record and finishes them once."""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
from typing import get_args

import pytest

from tunesmith.cli import main
from tunesmith.config import TrackerName, TrainConfig
from tunesmith.errors import UsageError
from tunesmith.training import tracking
from tunesmith.training.hooks import TrainHooks
from tunesmith.training.tracking import TRACKERS, with_trackers

MODULES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
INSTALLED = [name for name, module in MODULES.items() if importlib.util.find_spec(module)]


def _needs(name: str) -> None:
    if name not in INSTALLED:
        pytest.skip(f"{name} is not installed (pip install {name}, or tunesmith[tracking])")


@pytest.fixture(scope="module")
def run(tiny_model_dir, tiny_data_dir, tmp_path_factory):
    """One tiny run through the CLI, reported to every installed tracker, all local."""
    if not INSTALLED:
        pytest.skip("no tracker installed (pip install 'tunesmith[tracking]')")
    out = tmp_path_factory.mktemp("tracked") / "run"
    with pytest.MonkeyPatch.context() as mp:
        for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_PROJECT", "MLFLOW_TRACKING_URI",
                    "MLFLOW_EXPERIMENT_NAME"):
            mp.delenv(var, raising=False)
        assert main(["train", "--data", str(tiny_data_dir), "--model", str(tiny_model_dir),
                     "--epochs", "1", "--batch-size", "3", "--precision", "fp32", "--quiet",
                     "--out", str(out), "--report-to", ",".join(INSTALLED),
                     "--wandb-project", "proj", "--wandb-tags", "a,b"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return out, records


def _series(records: list[dict], key: str) -> list[tuple[int, float]]:
    return [(r["step"], r[key]) for r in records if key in r]


def _assert_same(logged: list[tuple[int, float]], expected: list[tuple[int, float]],
                 rel: float = 1e-12) -> None:
    """Same steps, same values (`rel` 1e-6 where a tracker stores float32)."""
    assert expected and [s for s, _ in logged] == [s for s, _ in expected]
    assert [v for _, v in logged] == pytest.approx([v for _, v in expected], rel=rel)


def test_tracker_names_are_the_config_names():
    assert set(TRACKERS) == set(get_args(TrackerName)) == set(MODULES)


def test_tensorboard_scalars_equal_metrics_jsonl(run):
    _needs("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, records = run
    events = EventAccumulator(str(out / "tensorboard")).Reload()
    assert "step" not in events.Tags()["scalars"]
    for key in ("train_loss", "lr", "grad_norm", "full_valid_loss", "epoch"):
        _assert_same([(e.step, e.value) for e in events.Scalars(key)], _series(records, key),
                     rel=1e-6)
    assert [s for s, _ in _series(records, "train_loss")] == [1, 2, 3]


def test_mlflow_run_holds_metrics_and_params(run):
    _needs("mlflow")
    from mlflow import MlflowClient

    out, records = run
    client = MlflowClient(tracking_uri=f"sqlite:///{out.resolve()}/mlflow.db")
    [found] = client.search_runs([client.get_experiment_by_name("tunesmith").experiment_id])
    assert found.info.run_name == "run" and found.info.status == "FINISHED"
    history = client.get_metric_history(found.info.run_id, "train_loss")
    _assert_same([(m.step, m.value) for m in history], _series(records, "train_loss"))
    assert found.data.params["batch_size"] == "3" and found.data.params["epochs"] == "1"


def _wandb_records(path) -> list[bytes]:
    """The records of a `.wandb` file: a LevelDB log (32 KiB blocks, 7-byte record headers:
    crc32, length, type FULL=1 FIRST=2 MIDDLE=3 LAST=4) after a 7-byte `:W&B` header."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, parts, records = 7, b"", []
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        parts += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            records.append(parts)
            parts = b""
    return records


def test_wandb_offline_run_holds_metrics(run):
    _needs("wandb")
    from wandb.proto import wandb_internal_pb2

    out, records = run
    [run_file] = (out / "wandb").glob("offline-run-*/run-*.wandb")
    history, meta = {}, None
    for raw in _wandb_records(run_file):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            row = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                   for i in record.history.item}
            history.setdefault(row["_step"], {}).update(row)
        elif record.WhichOneof("record_type") == "run":
            meta = record.run
    assert (meta.project, meta.display_name, list(meta.tags)) == ("proj", "run", ["a", "b"])
    logged = [(step, row["train_loss"]) for step, row in sorted(history.items())
              if "train_loss" in row]
    _assert_same(logged, _series(records, "train_loss"))


@pytest.mark.parametrize("name,module", [("tensorboard", "torch.utils.tensorboard"),
                                         ("mlflow", "mlflow"), ("wandb", "wandb")])
def test_a_missing_package_is_named_before_training(name, module, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    with pytest.raises(UsageError, match=f"pip install {name} "):
        with_trackers(TrainHooks(), [name], tmp_path)
    from tunesmith.training import train

    with pytest.raises(UsageError, match=f"--report-to {name} needs"):
        train(TrainConfig(train_file=str(tmp_path / "none.jsonl"), out=str(tmp_path / "run"),
                          report_to=[name]))
    assert not (tmp_path / "run").exists()


def test_unknown_tracker_names_are_refused():
    with pytest.raises(UsageError, match="--report-to must list tensorboard, mlflow or wandb"):
        TrainConfig(report_to=["neptune"])
    with pytest.raises(UsageError, match="--report-to"):
        TrainConfig(report_to="tensorboard")  # a bare string, not a list


def test_report_to_flag_parses_a_comma_separated_list(capsys):
    import argparse

    from tunesmith.cli.train import add_parser

    sub = argparse.ArgumentParser().add_subparsers()
    add_parser(sub)
    parser = sub.choices["train"]
    args = parser.parse_args(["--report-to", "tensorboard, wandb", "--wandb-tags", "x,y"])
    assert (args.report_to, args.wandb_tags) == (["tensorboard", "wandb"], ["x", "y"])
    assert parser.parse_args([]).report_to == []
    with pytest.raises(SystemExit):
        parser.parse_args(["--report-to", "tensorboard,neptune"])
    assert "'neptune' is not one of tensorboard, mlflow, wandb" in capsys.readouterr().err


class _Fake:
    def __init__(self) -> None:
        self.calls: list = []

    def start(self, config, run_dir):
        self.calls.append(("start", config, run_dir))

    def log(self, metrics, step):
        self.calls.append(("log", metrics, step))

    def finish(self):
        self.calls.append(("finish",))


def test_wrapper_starts_on_first_record_and_finishes_once(monkeypatch, tmp_path):
    fake, seen = _Fake(), []
    monkeypatch.setitem(tracking.TRACKERS, "tensorboard", lambda: fake)
    stop = iter([False, True])
    hooks = with_trackers(TrainHooks(on_record=seen.append, should_stop=lambda: next(stop)),
                          ["tensorboard", "tensorboard"], tmp_path)
    hooks.on_start({"lr": 0.1})
    assert fake.calls == []  # ranks other than 0 get no record, so never start
    hooks.on_record({"step": 1, "epoch": 1, "train_loss": 2.5, "tokens": 7, "flag": True,
                     "note": "x"})
    assert not hooks.should_stop()
    assert hooks.should_stop()  # a cancelled run: the trackers finish before TrainingStopped
    hooks.on_finish()
    assert seen == [{"step": 1, "epoch": 1, "train_loss": 2.5, "tokens": 7, "flag": True,
                     "note": "x"}]
    assert fake.calls == [("start", {"lr": 0.1}, tmp_path),
                          ("log", {"epoch": 1, "train_loss": 2.5, "tokens": 7}, 1), ("finish",)]


def test_a_process_that_never_records_finishes_nothing(monkeypatch, tmp_path):
    fake = _Fake()
    monkeypatch.setitem(tracking.TRACKERS, "mlflow", lambda: fake)
    hooks = with_trackers(TrainHooks(), ["mlflow"], tmp_path)
    hooks.on_start({})
    hooks.on_finish()
    assert fake.calls == []
