"""The training loop on a tiny random model: files, what trains, learning, resume."""

import csv
import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.training.interrupt import dies_after_epoch
from tunesmith.config import TrainConfig
from tunesmith.errors import UsageError
from tunesmith.training import train


def config(tiny_model_dir, tiny_data_dir, out, **kw):
    base = dict(train_file=str(tiny_data_dir / "train.jsonl"),
                val_file=str(tiny_data_dir / "validation.jsonl"), out=str(out),
                model=str(tiny_model_dir), epochs=2, batch_size=3, quiet=True, precision="fp32")
    return TrainConfig(**{**base, **kw})


def test_lora_run_folder_and_what_trains(tiny_model_dir, tiny_data_dir, tmp_path):
    before = load_file(tiny_model_dir / "model.safetensors")
    result = train(config(tiny_model_dir, tiny_data_dir, tmp_path / "run"))
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoints", "config.yaml", "final", "loss.png", "metrics.jsonl", "results.csv"]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["epoch-002"]
    assert sorted(p.name for p in (run / "checkpoints" / "epoch-002").iterdir()) == [
        "optimizer.pt", "rng.pt", "scheduler.pt", "state.json", "weights"]
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json",
            "tunesmith.json"} <= {p.name for p in (run / "final").iterdir()}
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["epochs"], saved["batch_size"], saved["n_train"]) == (2, 3, 9)
    assert saved["total_steps"] == result.steps == 6 and saved["auto"] == ["lr"]
    rows = list(csv.DictReader((run / "results.csv").open()))
    assert list(rows[0]) == ["step", "train_loss", "train_accuracy", "valid_loss",
                             "valid_mean_token_accuracy"]
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(torch.isfinite(torch.tensor(float(r["train_loss"]))) for r in rows)
    # only the adapters changed: the base weights inside the PEFT model are untouched
    state = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
             for k, v in result.model.state_dict().items() if "lora_" not in k}
    for name, weight in before.items():
        torch.testing.assert_close(state[name], weight, rtol=0, atol=0)
    adapters = load_file(run / "final" / "adapter_model.safetensors")
    assert any(v.abs().sum() > 0 for k, v in adapters.items() if "lora_B" in k)  # B starts at 0


def test_final_folder_loads_with_plain_transformers_and_peft(tiny_model_dir, tiny_data_dir,
                                                              tmp_path):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    train(config(tiny_model_dir, tiny_data_dir, tmp_path / "lora", epochs=1))
    model = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "lora" / "final")
    tok = AutoTokenizer.from_pretrained(tmp_path / "lora" / "final")
    assert model(**tok("hi", return_tensors="pt")).logits.shape[-1] == len(tok)
    train(config(tiny_model_dir, tiny_data_dir, tmp_path / "full", epochs=1, method="full"))
    full = AutoModelForCausalLM.from_pretrained(tmp_path / "full" / "final")
    assert full(**tok("hi", return_tensors="pt")).logits.shape[-1] == len(tok)


def test_full_fine_tuning_learns(tiny_model_dir, tiny_data_dir, tmp_path):
    result = train(config(tiny_model_dir, tiny_data_dir, tmp_path / "run", method="full",
                          epochs=8, lr=1e-2, warmup_ratio=0.0))
    assert result.final_valid_loss < 0.7 * result.initial_valid_loss
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["train_loss"] for r in records if "train_loss" in r]
    assert train_losses[-1] < 0.7 * train_losses[0]
    assert result.best_epoch is not None


def test_resume_after_a_kill_reaches_the_same_weights(tiny_model_dir, tiny_data_dir, tmp_path,
                                                     monkeypatch):
    kw = dict(epochs=3, lora_dropout=0.1)  # dropout: the restored RNG state matters
    straight = train(config(tiny_model_dir, tiny_data_dir, tmp_path / "a", **kw))

    with dies_after_epoch(monkeypatch, 1):
        train(config(tiny_model_dir, tiny_data_dir, tmp_path / "b", **kw))
    assert not (tmp_path / "b" / "final").exists()
    resumed = train(config(tiny_model_dir, tiny_data_dir, tmp_path / "b", resume=True, **kw))
    assert resumed.steps == straight.steps == 9
    a = load_file(tmp_path / "a" / "final" / "adapter_model.safetensors")
    b = load_file(tmp_path / "b" / "final" / "adapter_model.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6)
    steps = [json.loads(x)["step"] for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [json.loads(x)["step"]
                     for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]


def test_existing_run_and_changed_resume_are_refused(tiny_model_dir, tiny_data_dir, tmp_path):
    train(config(tiny_model_dir, tiny_data_dir, tmp_path / "r", epochs=1))
    with pytest.raises(UsageError, match="--resume"):
        train(config(tiny_model_dir, tiny_data_dir, tmp_path / "r", epochs=1))
    with pytest.raises(UsageError, match="lr"):
        train(config(tiny_model_dir, tiny_data_dir, tmp_path / "r", epochs=1, lr=0.1, resume=True))


def test_config_problems_are_named_together():
    with pytest.raises(UsageError) as err:
        TrainConfig(epochs=0, lr=5.0, lora_r=0, max_seq_len=8)
    message = str(err.value)
    for flag in ("--epochs", "--lr", "--lora-r", "--max-seq-len"):
        assert flag in message


def test_auto_values_are_resolved_from_the_data_size():
    cfg = TrainConfig().resolve(400)
    assert (cfg.epochs, cfg.batch_size, cfg.lr) == (3, 8, 2e-4)
    assert (cfg.steps_per_epoch, cfg.total_steps, cfg.auto) == (50, 150, ["epochs", "batch_size", "lr"])
    assert TrainConfig(method="full", batch_size=32).resolve(400).lr == pytest.approx(4e-5)


def test_steps_by_token_budget(tiny_model_dir, tiny_data_dir, tmp_path):
    from tunesmith.data.steps import cut, epoch_steps

    assert cut([5, 5, 5], [0, 1, 2], batch_size=2) == [[0, 1], [2]]
    assert cut([5, 9, 3, 20, 1], [0, 1, 2, 3, 4], 1, batch_tokens=14) == [[0, 1], [2], [3], [4]]
    result = train(config(tiny_model_dir, tiny_data_dir, tmp_path / "run", batch_tokens=80,
                          epochs=2))
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    lengths = [len(x) for x in _token_lengths(tiny_model_dir, tiny_data_dir)]
    expected = sum(len(epoch_steps(lengths, 0, e, 1, 80)) for e in range(2))
    assert saved["total_steps"] == result.steps == expected > 2 * -(-9 // 3)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "train_loss" in r]
    assert len(steps) == expected
    assert all(r["tokens"] <= 80 for r in steps)  # 2 examples of ~37 tokens a step


def _token_lengths(tiny_model_dir, tiny_data_dir):
    from tunesmith.data.formats import read_dataset
    from tunesmith.data.render import tokenize_example
    from tunesmith.modeling import load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    return [tokenize_example(tok, e, 1024).input_ids
            for e in read_dataset(tiny_data_dir / "train.jsonl").examples]


def test_bf16_true_keeps_weights_and_optimizer_state_in_bf16(tiny_model_dir, tiny_data_dir,
                                                             tmp_path):
    result = train(config(tiny_model_dir, tiny_data_dir, tmp_path / "run", method="full",
                          precision="bf16-true", lr=3e-3, epochs=3))
    assert {p.dtype for p in result.model.parameters()} == {torch.bfloat16}
    state = torch.load(tmp_path / "run" / "checkpoints" / "epoch-003" / "optimizer.pt",
                       weights_only=False)["state"]
    assert {v["exp_avg"].dtype for v in state.values()} == {torch.bfloat16}
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in records if "train_loss" in r]
    assert losses[-1] < 0.95 * losses[0]  # it learns (fp32: 10.89 -> 9.84, bf16-true -> 9.86)
