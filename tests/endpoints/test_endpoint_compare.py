"""`compare --prompt-model openai:NAME --model M`: keep prompting a hosted model, or fine-tune
a small one? Against a live `tunesmith serve` (tiny model), end to end."""

from __future__ import annotations

import json

from tests.conftest import ASSETS
from tests.endpoints.test_endpoint_eval import SECRET
from tests.serve.conftest import Server
from tunesmith.cli import main


def test_compare_prompts_the_endpoint_and_fine_tunes_the_local_model(
        tmp_path, capsys, monkeypatch, tiny_model_dir):
    from tunesmith.data.prepare import prepare

    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ENDPOINT_KEY", SECRET)
    data = tmp_path / "data"
    prepare(ASSETS / "classification_tiny.jsonl", "classification", data, val=0.2, test=0.3)
    server = Server(tmp_path / "svc", tiny_model_dir).start()
    hosted = f"openai:{tiny_model_dir}"
    prices = tmp_path / "prices.yaml"
    prices.write_text("as_of: test\nopenai:\n  m: {training: 1, base_input: 1, base_output: 2, "
                      "ft_input: 2, ft_output: 4}\nself_hosted:\n  cpu-2vcpu: {hourly: 0.1}\n"
                      f"endpoints:\n  '{tiny_model_dir}': {{input: 5.0, output: 20.0}}\n")
    argv = ["compare", "--data", str(data), "--model", str(tiny_model_dir), "--prompt-model",
            hosted, "--shots", "0", "--epochs", "1", "--base-url", server.url, "--api-key-env",
            "ENDPOINT_KEY", "--quiet", "--json"]
    try:
        assert main([*argv, "--out", str(tmp_path / "unpriced")]) == 0
        unpriced = json.loads(capsys.readouterr().out)
        assert main([*argv, "--out", str(tmp_path / "priced"), "--prices", str(prices)]) == 0
        priced = json.loads(capsys.readouterr().out)
    finally:
        server.stop()
    names = [a["name"] for a in unpriced["approaches"]]
    assert names == [f"{hosted} · zero-shot", "fine-tuned (lora)"]
    prompt_row = unpriced["approaches"][0]
    assert prompt_row["model"] == hosted and prompt_row["cost"]["known"] is False
    assert prompt_row["cost"]["where"] == f"endpoint {server.url}"
    assert unpriced["crossings"] == {names[0]: {names[1]: []}}  # no price: no crossing
    md = (tmp_path / "unpriced" / "report.md").read_text()
    assert "price unknown" in md and "$0.0000" not in md.split("## When")[0].split(names[0])[1]
    row = priced["approaches"][0]["cost"]
    assert row["known"] and row["per_1k_requests_usd"] > 0
    tokens = priced["approaches"][0]
    expected = (tokens["prompt_tokens"] * 5.0 + tokens["completion_tokens"] * 20.0) / 1e6 * 1000
    assert abs(row["per_1k_requests_usd"] - expected) < 1e-9
    assert priced["prompt_models"] == [hosted] and priced["model"] == str(tiny_model_dir)
    assert SECRET not in (tmp_path / "priced" / "report.json").read_text()


def test_a_hosted_row_is_cheaper_at_low_volume_and_the_deployed_fine_tune_at_high(
        tmp_path, capsys, monkeypatch, tiny_model_dir):
    """Prices as deployed: one machine is billed all month whatever the traffic, so at 1,000
    requests a month the hosted model (billed per token) costs less, and at 10M the fine-tune."""
    from tests.endpoints.scripted import ScriptedServer
    from tunesmith.data.prepare import prepare

    data = tmp_path / "data"
    prepare(ASSETS / "classification_tiny.jsonl", "classification", data, val=0.2, test=0.3)
    prices = tmp_path / "prices.yaml"
    prices.write_text("as_of: test\nopenai:\n  m: {training: 1, base_input: 1, base_output: 2, "
                      "ft_input: 2, ft_output: 4}\nself_hosted:\n  cpu-2vcpu: {hourly: 0.0893}\n"
                      "endpoints:\n  scripted: {input: 0.40, output: 1.60}\n")
    first_year = {}
    with ScriptedServer(lambda body: "positive") as hosted:
        monkeypatch.setenv("SCRIPTED_KEY", hosted.key)
        for volume in (1_000, 10_000_000):
            out = tmp_path / f"report-{volume}"
            assert main(["compare", "--data", str(data), "--model", str(tiny_model_dir),
                         "--prompt-model", "openai:scripted", "--shots", "0", "--epochs", "1",
                         "--mode", "generate", "--base-url", hosted.url, "--api-key-env",
                         "SCRIPTED_KEY", "--prices", str(prices), "--no-audit",
                         "--requests-per-month", str(volume), "--out", str(out), "--quiet",
                         "--json"]) == 0
            doc = json.loads(capsys.readouterr().out)
            first_year[volume] = doc["recommendation"]["first_year_cost_usd"]
            html = (out / "report.html").read_text()
            assert "data:image/png;base64" in html and "first-year" in html
    row = "openai:scripted · zero-shot"
    assert first_year[1_000][row] < first_year[1_000]["fine-tuned (lora)"]
    assert first_year[10_000_000][row] > first_year[10_000_000]["fine-tuned (lora)"]
    [point] = doc["crossings"][row]["fine-tuned (lora)"]
    assert 1_000 < point["requests_per_month"] < 10_000_000
    assert point["cheaper_above"] == "fine-tuned (lora)"
