"""DPO: the loss against a direct computation, learning on a fixture, the reference model,
and what the run folder records."""

import csv
import json

import pytest
import torch
import torch.nn.functional as F

from tunesmith.config import TrainConfig
from tunesmith.data.formats import read_dataset
from tunesmith.errors import UsageError
from tunesmith.modeling import load_model
from tunesmith.training import train
from tunesmith.training.preference import (
    REFERENCE_FILE,
    DPOLoss,
    PreferenceObjective,
    collate_pairs,
    pair_batches,
)

NAMES = ["Ana", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal", "Ivy", "Jo", "Kai", "Lu", "Max",
         "Ned", "Oda", "Pia"]


def pref_row(prompt: str, good: str, bad: str) -> dict:
    return {"input": {"messages": [{"role": "user", "content": prompt}]},
            "preferred_output": [{"role": "assistant", "content": good}],
            "non_preferred_output": [{"role": "assistant", "content": bad}]}


@pytest.fixture(scope="module")
def pref_dir(tmp_path_factory):
    """24 training and 8 validation pairs: a friendly greeting preferred to a rude one."""
    path = tmp_path_factory.mktemp("pref")
    rows = [pref_row(f"Say hello to {n} ({i})", f"Hello {n}, lovely to meet you!", "No. Go away.")
            for i, n in enumerate(NAMES * 2)]
    (path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:24]))
    (path / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[24:]))
    return path


def pairs_of(path, tokenizer, n=6):
    examples = read_dataset(path).examples[:n]
    return [PreferenceObjective(0.1).tokenize(tokenizer, e, 256) for e in examples]


def direct_logp(model, item) -> torch.Tensor:
    """Sum of log p(answer token) from a plain forward pass over one unpadded sequence."""
    ids = torch.tensor([item.input_ids])
    logits = model(input_ids=ids).logits[0, :-1].float()
    targets = torch.tensor(item.labels[1:])
    keep = targets != -100
    return torch.log_softmax(logits, -1)[keep].gather(1, targets[keep][:, None]).sum()


@pytest.mark.parametrize("packed", [True, False])
def test_dpo_loss_equals_a_direct_computation(tiny_model_dir, tokenizer, pref_dir, packed):
    model = load_model(str(tiny_model_dir))
    pairs = pairs_of(pref_dir / "train.jsonl", tokenizer)
    torch.manual_seed(0)
    for p in pairs:  # any reference values: the loss must use them as given
        p.ref = tuple(torch.randn(2).mul(3).tolist())
    beta = 0.3
    loss_fn = DPOLoss(model, beta)
    with torch.no_grad():
        got = loss_fn(collate_pairs(pairs, packed, tokenizer.pad_token_id))
        direct = []
        for p in pairs:
            pc, pr = direct_logp(model, p.chosen), direct_logp(model, p.rejected)
            margin = beta * ((pc - p.ref[0]) - (pr - p.ref[1]))
            direct.append((-F.logsigmoid(margin), margin))
    loss = torch.stack([d[0] for d in direct]).sum()
    margins = torch.stack([d[1] for d in direct])
    torch.testing.assert_close(got[0], loss, rtol=1e-4, atol=1e-5)
    assert int(got[1]) == len(pairs)
    assert int(got[2]) == int((margins > 0).sum())
    torch.testing.assert_close(got[3], margins.sum(), rtol=1e-4, atol=1e-5)


def test_a_pair_is_never_split_between_passes(tokenizer, pref_dir):
    pairs = pairs_of(pref_dir / "train.jsonl", tokenizer, n=8)
    longest = max(len(p.input_ids) for p in pairs)
    for packed in (True, False):
        batches = pair_batches(pairs, packed, max_tokens=longest + 10, pad_id=0)
        assert len(batches) > 1 and sum(b.n_pairs for b in batches) == 8
        for b in batches:  # every pass holds its pairs' two sequences
            assert set(b.seq_ids[b.seq_ids >= 0].tolist()) == set(range(2 * b.n_pairs))


def run_config(tiny_model_dir, pref_dir, out, **kw):
    base = dict(train_file=str(pref_dir / "train.jsonl"),
                val_file=str(pref_dir / "validation.jsonl"), out=str(out),
                model=str(tiny_model_dir), method="dpo", lr=1e-3, epochs=3, quiet=True)
    return TrainConfig(**{**base, **kw})


def test_dpo_training_raises_validation_preference_accuracy(tiny_model_dir, tokenizer, pref_dir,
                                                            tmp_path):
    run = tmp_path / "run"
    result = train(run_config(tiny_model_dir, pref_dir, run))
    assert result.config.method == "lora" and result.config.loss == "dpo"
    assert result.config.beta == 0.1 and "beta" in result.config.auto
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    full = [r for r in records if "full_valid_loss" in r]
    assert full[0]["step"] == 0 and full[0]["full_valid_preference_accuracy"] == 0.0
    assert full[-1]["full_valid_preference_accuracy"] == 1.0
    assert full[-1]["full_valid_reward_margin"] > 0.05
    assert full[-1]["full_valid_loss"] < full[0]["full_valid_loss"] - 0.03
    rows = list(csv.DictReader((run / "results.csv").open()))
    assert list(rows[0]) == ["step", "train_loss", "train_preference_accuracy",
                             "train_reward_margin", "valid_loss", "valid_preference_accuracy",
                             "valid_reward_margin"]
    assert len(rows) == result.steps
    meta = json.loads((run / "final" / "tunesmith.json").read_text())
    assert meta["loss"] == "dpo" and meta["beta"] == 0.1

    # The reference is the starting model: the base weights (the new adapter adds nothing yet).
    saved = torch.load(run / REFERENCE_FILE, weights_only=True)
    base = load_model(str(tiny_model_dir))
    pairs = pairs_of(pref_dir / "train.jsonl", tokenizer, n=24)
    with torch.no_grad():
        direct = torch.tensor([direct_logp(base, x) for p in pairs for x in (p.chosen, p.rejected)])
    torch.testing.assert_close(saved["train"].float(), direct, rtol=0, atol=0.1)  # bf16 autocast
    # and the trained model moved away from it, in the preferred direction
    trained = load_model(str(run / "final")).merge_and_unload()
    with torch.no_grad():
        after = torch.tensor([direct_logp(trained, x) for p in pairs for x in (p.chosen, p.rejected)])
    moved = after - direct
    assert (moved[0::2] - moved[1::2] > 0).all()


def test_full_dpo_and_a_paused_resumed_run_reach_the_same_weights(tiny_model_dir, pref_dir,
                                                                  tmp_path):
    from safetensors.torch import load_file

    from tunesmith.training.hooks import TrainHooks, TrainingPaused

    kw = dict(method="full-dpo", lr=1e-4, epochs=2, batch_size=6, precision="fp32")
    straight = train(run_config(tiny_model_dir, pref_dir, tmp_path / "a", **kw))
    assert straight.config.method == "full" and straight.steps == 8
    calls = {"n": 0}

    def pause_at_step_3() -> bool:
        calls["n"] += 1
        return calls["n"] == 3

    with pytest.raises(TrainingPaused):
        train(run_config(tiny_model_dir, pref_dir, tmp_path / "b", **kw),
              TrainHooks(should_pause=pause_at_step_3))
    assert [p.name for p in (tmp_path / "b" / "checkpoints").iterdir()] == ["step-000003"]
    resumed = train(run_config(tiny_model_dir, pref_dir, tmp_path / "b", resume=True, **kw))
    assert resumed.steps == 8
    a = load_file(tmp_path / "a" / "final" / "model.safetensors")
    b = load_file(tmp_path / "b" / "final" / "model.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6)
    steps = [json.loads(x)["step"] for x in (tmp_path / "b" / "metrics.jsonl").read_text()
             .splitlines() if "train_loss" in x]
    assert steps == list(range(1, 9))  # nothing lost, nothing twice


def test_dpo_refuses_chat_data_and_sft_refuses_preference_data(tiny_model_dir, tiny_data_dir,
                                                                pref_dir, tmp_path):
    with pytest.raises(UsageError, match="preference rows"):
        train(run_config(tiny_model_dir, pref_dir, tmp_path / "a",
                         train_file=str(tiny_data_dir / "train.jsonl"), val_file=None))
    with pytest.raises(UsageError, match="--method dpo"):
        train(run_config(tiny_model_dir, pref_dir, tmp_path / "b", method="lora"))
