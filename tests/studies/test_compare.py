"""compare end to end on a tiny random model, the recommendation rule, and the HTML rendering."""

import json
import re
import shutil
import subprocess

import pytest

from tests.conftest import ASSETS
from tunesmith.cost import ApproachCost
from tunesmith.evaluation.runner import EvalResult
from tunesmith.report.recommend import recommend
from tunesmith.studies.compare import CompareConfig, compare


def result(name, kind, preds, gold):
    from tunesmith.evaluation.metrics import classification_metrics

    m = classification_metrics(gold, preds, ["a", "b"])
    return EvalResult(name, kind, 0, "classification", "m", "score", len(gold), m, 0, 0.01, 50, 2,
                      preds, gold, ["x"] * len(gold))


def cost(name, one_off, per_1k):
    return ApproachCost(name, "prompt", "self-hosted (box)", one_off, per_1k, "")


def test_clear_quality_winner_is_recommended():
    gold = ["a", "b"] * 100
    good = result("fine-tuned", "fine-tune", gold, gold)
    bad = result("zero-shot", "prompt", ["a"] * 200, gold)
    rec = recommend([bad, good], {"zero-shot": cost("zero-shot", 0, 1),
                                  "fine-tuned": cost("fine-tuned", 100, 1)}, ["a", "b"], 1000)
    assert rec.choice == "fine-tuned" and "beyond the 95% interval" in rec.reason
    assert rec.comparisons[0].significant and "Quality first" in rec.rule


def test_a_tie_is_decided_on_cost():
    gold = ["a", "b"] * 10
    a = result("zero-shot", "prompt", gold[:19] + ["a"], gold)
    b = result("fine-tuned", "fine-tune", gold, gold)
    rec = recommend([a, b], {"zero-shot": cost("zero-shot", 0, 1),
                             "fine-tuned": cost("fine-tuned", 500, 1)}, ["a", "b"], 1000)
    assert rec.choice == "zero-shot" and "costs least" in rec.reason


@pytest.fixture(scope="module")
def tiny_report(tiny_model_dir, tmp_path_factory):
    from tunesmith.data.prepare import prepare

    data = tmp_path_factory.mktemp("data")
    lines = (ASSETS / "chat_tiny.jsonl").read_text().splitlines() * 1
    (data / "in.jsonl").write_text("\n".join(lines) + "\n")
    prepare(data / "in.jsonl", "classification", data / "prepared", val=0.25, test=0.25)
    out = tmp_path_factory.mktemp("report")
    report = compare(CompareConfig(data=str(data / "prepared"), out=str(out),
                                   model=str(tiny_model_dir), shots=[0, 2, "auto"], epochs=1,
                                   methods=["lora", "lora-head"], quiet=True))
    return report, out


def test_compare_writes_the_report_files(tiny_report):
    report, out = tiny_report
    names = {p.name for p in out.iterdir()}
    assert {"report.html", "report.md", "report.json", "loss.png", "cost.png", "confusion.png",
            "run", "data"} <= names
    doc = json.loads((out / "report.json").read_text())
    assert doc["task"] == "classification"
    assert [a["name"] for a in doc["approaches"]] == ["zero-shot", "2-shot", "best prompt",
                                                      "fine-tuned (lora)",
                                                      "fine-tuned (lora-head)"]
    assert [a["kind"] for a in doc["approaches"]] == ["prompt"] * 3 + ["fine-tune"] * 2
    head = doc["approaches"][-1]
    assert head["completion_tokens"] == 0 and head["invalid"] == 0  # a head writes nothing
    assert set(doc["training"]) == {"fine-tuned (lora)", "fine-tuned (lora-head)"}
    assert (out / "run-lora-head" / "final" / "adapter_config.json").is_file()
    search = doc["prompt_searches"][report.model]
    assert search["examples"] == 3 and len(search["candidates"]) >= 3  # validation only
    assert doc["approaches"][2]["prompt"] == search["best"]
    assert set(doc["crossings"]) == {"zero-shot", "2-shot", "best prompt"}
    assert set(doc["crossings"]["zero-shot"]) == {"fine-tuned (lora)",
                                                            "fine-tuned (lora-head)"}
    throughput = doc["throughput"][report.model]
    assert throughput["prefill_tokens_per_s"] > 0 and throughput["decode_tokens_per_s"] > 0
    for a in doc["approaches"]:
        assert {"accuracy", "macro_f1", "per_class", "confusion"} <= set(a["metrics"])
        assert a["cost"]["per_1k_requests_usd"] > 0 and a["latency_s"] > 0
    assert doc["approaches"][-1]["cost"]["one_off_usd"] > 0
    assert doc["recommendation"]["choice"] in [a["name"] for a in doc["approaches"]]
    assert "Quality first" in doc["recommendation"]["rule"]
    md = (out / "report.md").read_text()
    assert "Recommendation" in md and "| zero-shot |" in md
    assert "## The prompt, chosen on the validation split" in md
    assert "## When fine-tuning pays back" in md and "Loss curve" in md
    assert "## Cost against volume" in md and "$/month at 100M" in md
    assert "Learning curve" not in md


def test_report_html_renders_in_headless_chromium(tiny_report):
    _, out = tiny_report
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (make test installs it)")
    html = out / "report.html"
    shot = out / "screenshot.png"
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--virtual-time-budget=5000"]
    for _ in range(3):  # a loaded CI machine may dump the DOM before the load event has run
        dom = subprocess.run(common + ["--dump-dom", html.as_uri()], capture_output=True,
                             text=True, timeout=120)
        if "data-figures=" in dom.stdout:
            break
    figures = html.read_text().count("<img ")
    assert figures == 4  # two loss curves (lora, lora-head), the cost plot, the confusion matrix
    assert f'data-figures="{figures} loaded"' in dom.stdout, dom.stderr[-2000:]
    subprocess.run(common + [f"--screenshot={shot}", "--window-size=1200,2400", html.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 20_000
    external = re.findall(r'(?:src|href)="(?!data:|#)[^"]*"', html.read_text())
    assert external == []  # self-contained: every image is inline
