"""`tunesmith curve` end to end on a tiny random model: sizes 8/16/32."""

import json
import random

import pytest

from tunesmith.cli import main
from tunesmith.data.prepare import prepare


@pytest.fixture(scope="module")
def curve_data(tmp_path_factory):
    rng = random.Random(0)
    words = {"sport": "match goal team coach", "money": "bank loan card price"}
    rows = [{"text": " ".join(rng.choices(words[k].split(), k=5)), "label": k}
            for k in ("sport", "money") for _ in range(30)]
    rng.shuffle(rows)
    raw = tmp_path_factory.mktemp("raw") / "topics.jsonl"
    raw.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path_factory.mktemp("curve-data")
    prepare(raw, "classification", out, val=0.1, test=0.2)
    return out


def test_curve_runs_one_fine_tune_per_nested_size(curve_data, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "curve"
    assert main(["curve", "--data", str(curve_data), "--model", str(tiny_model_dir), "--sizes",
                 "8,16,32", "--shots", "0", "--target", "0.9", "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["n"] for p in doc["points"]] == [8, 16, 32]
    for p in doc["points"]:
        assert 0 <= p["low"] <= p["metric"] <= p["high"] <= 1
        assert (out / "runs" / f"n{p['n']}" / "final").is_dir()
    subsets = [[json.loads(line)["messages"][-2]["content"]
                for line in (out / "data" / f"train-{n}.jsonl").read_text().splitlines()]
               for n in (8, 16, 32)]
    assert subsets[0] == subsets[1][:8] and subsets[1] == subsets[2][:16]  # nested
    labels = [json.loads(line)["messages"][-1]["content"]
              for line in (out / "data" / "train-16.jsonl").read_text().splitlines()]
    assert abs(labels.count("sport") - 8) <= 1  # stratified
    assert {"points", "fit", "examples_needed", "backtest", "prompting"} <= set(doc)
    assert doc["backtest"]["fitted_on"] == [8, 16] and doc["backtest"]["n"] == 32
    assert doc["prompting"][0]["name"] == "zero-shot"
    assert doc["fit"]["form"] == "log-linear"  # three points: too few to charge a power law
    assert (out / "curve.png").stat().st_size > 10_000
    assert json.loads((out / "curve.json").read_text())["points"] == doc["points"]


def test_curve_refuses_bad_sizes_and_respects_the_budget(curve_data, tiny_model_dir, tmp_path,
                                                         capsys):
    assert main(["curve", "--data", str(curve_data), "--model", str(tiny_model_dir), "--sizes",
                 "8,5000", "--out", str(tmp_path / "a")]) == 2
    assert "only" in capsys.readouterr().err
    assert main(["curve", "--data", str(curve_data), "--model", str(tiny_model_dir), "--sizes",
                 "8,16", "--shots", "0", "--budget-minutes", "0.0001", "--out",
                 str(tmp_path / "b"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["points"] == [] and doc["skipped_sizes"] == [8, 16] and doc["fit"] is None


@pytest.mark.slow  # an integration run: compare --curve (make test-slow)
def test_compare_curve_puts_the_curve_and_the_audit_in_the_report(curve_data, tiny_model_dir,
                                                                 tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["compare", "--data", str(curve_data), "--model", str(tiny_model_dir),
                 "--shots", "0", "--epochs", "1", "--curve", "--curve-sizes", "8,16",
                 "--out", str(out), "--quiet", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["n"] for p in doc["curve"]["points"]] == [8, 16]
    assert doc["curve"]["prompting"][0]["name"] == "zero-shot"  # compare's own prompting rows
    assert doc["audit"]["train"]["examples"] == 42 and "leaks" in doc["audit"]["test"]
    md = (out / "report.md").read_text()
    assert "## Learning curve" in md and "## Data audit" in md
    assert "![Learning curve](curve/curve.png)" in md
    assert (out / "report.html").read_text().count("<img ") == 4  # loss, cost, confusion, curve
