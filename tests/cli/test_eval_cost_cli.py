"""`tunesmith eval`, `cost` and `train` as a user runs them, on a tiny random model."""

import json

from tunesmith.cli import main


def test_eval_json(tiny_model_dir, tiny_data_dir, capsys):
    code = main(["eval", "--model", str(tiny_model_dir), "--data",
                 str(tiny_data_dir / "validation.jsonl"), "--shots", "2", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["shots"] == 2 and doc["kind"] == "prompt"
    assert doc["metric"] == "macro_f1" and len(doc["predictions"]) == doc["n"] == 3


def test_cost_prices_every_approach(tiny_model_dir, tiny_data_dir, capsys):
    code = main(["cost", "--data", str(tiny_data_dir / "validation.jsonl"), "--model",
                 str(tiny_model_dir), "--shots", "2", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    names = [(a["name"], a["where"].split()[0]) for a in doc["approaches"]]
    assert names == [("zero-shot", "self-hosted"), ("2-shot", "self-hosted"),
                     ("fine-tuned (lora, probe)", "self-hosted"), ("zero-shot (OpenAI)", "OpenAI"),
                     ("2-shot (OpenAI)", "OpenAI"), ("fine-tuned (lora, probe) (OpenAI)", "OpenAI")]
    assert doc["training"]["measured_tokens_per_s"] > 0 and doc["training"]["epochs"] == 11
    assert doc["machine"].startswith("capacity measured here")
    rates = doc["throughput"]
    assert rates["prefill_tokens_per_s"] > rates["decode_tokens_per_s"] > 0
    for row in (0, 3):  # self-hosted and at OpenAI's prices: shots make prompts longer
        few, zero = doc["approaches"][row + 1], doc["approaches"][row]
        assert few["per_1k_requests_usd"] > zero["per_1k_requests_usd"]
        assert few["monthly_usd"] >= zero["monthly_usd"]
    # the fine-tuned row is measured, not a copy: it sends zero-shot's prompt (the same prompt
    # tokens) and its own answers' label-tree tokens
    fine, zero = doc["approaches"][2], doc["approaches"][0]
    assert fine["basis"] != zero["basis"] and fine["one_off_usd"] > 0
    assert fine["basis"].split(" prompt")[0] == zero["basis"].split(" prompt")[0]


def test_cost_of_a_trained_run(tiny_model_dir, tiny_data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_data_dir), "--model", str(tiny_model_dir),
                 "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["cost", "--data", str(tiny_data_dir / "validation.jsonl"), "--model",
                 str(tiny_model_dir), "--shots", "0", "--run", str(run), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r.get("tokens_per_s")]
    assert doc["training"]["tokens"] == sum(r["tokens"] for r in steps)
    assert doc["training"]["estimated_seconds"] == sum(r["tokens"] / r["tokens_per_s"]
                                                       for r in steps)
    assert doc["approaches"][1]["name"] == "fine-tuned (run)"
    assert main(["cost", "--data", str(tiny_data_dir / "validation.jsonl"), "--model",
                 "other-model", "--run", str(run)]) == 2
    assert "--run" in capsys.readouterr().err


def test_train_then_eval_the_run(tiny_model_dir, tiny_data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_data_dir), "--model", str(tiny_model_dir), "--epochs",
                 "1", "--out", str(run), "--quiet"]) == 0
    assert "run folder" in capsys.readouterr().out
    assert main(["eval", "--model", str(run), "--data", str(tiny_data_dir / "validation.jsonl"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "fine-tune"
    assert main(["train", "--data", str(tiny_data_dir), "--model", str(tiny_model_dir), "--out",
                 str(run)]) == 2  # an existing run needs --resume
