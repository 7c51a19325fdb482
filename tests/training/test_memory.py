"""`--batch-tokens auto`: the fit from measured passes, and the CPU rule in a real run."""

import contextlib

import pytest
import torch
import yaml

from tests.training.interrupt import dies_after_epoch
from tunesmith.config import TrainConfig
from tunesmith.errors import UsageError
from tunesmith.training import memory, train

MB = 2**20


def test_fit_tokens_follows_the_measured_line_and_checks_it():
    seen = []

    def linear(n):
        seen.append(n)
        return 1000 * MB + n * MB

    assert memory.fit_tokens(linear, unit=100, budget=3000 * MB, cap=10**6) == 2000
    assert seen == [100, 200, 2000]  # two points, then the estimate itself is measured
    assert memory.fit_tokens(linear, unit=100, budget=3000 * MB, cap=1234) == 1200  # the cap


def test_fit_tokens_shrinks_when_the_estimate_does_not_fit():
    def quadratic(n):  # attention without a fused kernel: the line underestimates large sizes
        if n > 5000:
            raise MemoryError
        return 1000 * MB + n * MB + n * n * MB // 2000

    budget = 3000 * MB
    tokens = memory.fit_tokens(quadratic, unit=100, budget=budget, cap=10**6)
    assert quadratic(tokens) <= budget < quadratic(tokens + 400)  # within a shrink step
    assert tokens % 100 == 0


def test_fit_tokens_falls_back_to_one_unit():
    def only_one(n):
        if n > 100:
            raise MemoryError
        return 10

    assert memory.fit_tokens(only_one, unit=100, budget=10**9, cap=10**6) == 100


def test_optimizer_state_bytes():
    fp32, bf16 = torch.zeros(10), torch.zeros(10, dtype=torch.bfloat16)
    assert memory.optimizer_state_bytes([fp32], "adamw") == 80
    assert memory.optimizer_state_bytes([bf16], "adamw") == 40  # bf16-true
    assert memory.optimizer_state_bytes([fp32], "adamw-8bit") == 20


def config(tiny_model_dir, tiny_data_dir, out, **kw):
    base = {"train_file": str(tiny_data_dir / "train.jsonl"),
                "val_file": str(tiny_data_dir / "validation.jsonl"), "out": str(out),
                "model": str(tiny_model_dir), "epochs": 2, "quiet": True, "precision": "fp32",
                "batch_tokens": "auto"}
    return TrainConfig(**{**base, **kw})


def test_auto_on_cpu_is_a_step_of_micro_batch_tokens_at_most_a_16th_of_an_epoch(
        tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch):
    # 9 examples of ~37 tokens: a 16th of the epoch is less than the longest example
    result = train(config(tiny_model_dir, tiny_data_dir, tmp_path / "a"))
    saved = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert "batch_tokens" in saved["auto"]
    longest = saved["batch_tokens"]
    assert 30 < longest < 60 and result.steps >= 2 * 5  # about one example a step
    # --resume keeps the run's number, even where the rule would now give another
    with dies_after_epoch(monkeypatch, 1):
        train(config(tiny_model_dir, tiny_data_dir, tmp_path / "b"))
    assert yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())["batch_tokens"] == longest
    monkeypatch.setattr(memory, "epoch_cap", lambda lengths: 10_000)  # the rule: 4096 now
    resumed = train(config(tiny_model_dir, tiny_data_dir, tmp_path / "b", resume=True))
    assert resumed.config.batch_tokens == longest and resumed.steps == result.steps


def test_measuring_runs_real_passes_and_frees_their_gradients(tiny_model_dir, tiny_data_dir,
                                                             monkeypatch):
    """The CUDA measurement with the device's memory counters replaced by a fake peak (a
    linear function of the tokens in the batch each pass actually built)."""
    from tunesmith.data.formats import read_dataset
    from tunesmith.modeling import load_model, load_tokenizer
    from tunesmith.training.objectives import objective_for

    tok = load_tokenizer(str(tiny_model_dir))
    examples = read_dataset(tiny_data_dir / "train.jsonl").examples
    objective = objective_for("lm", None, examples)
    items = [objective.tokenize(tok, e, 1024) for e in examples]
    lengths = [len(x.input_ids) for x in items]
    model = load_model(str(tiny_model_dir))
    loss_fn = objective.loss(model)
    params = list(model.parameters())
    built = []  # real tokens of the batches each pass built
    real_batches = objective.batches

    def counting_batches(chosen, pack, tokens, pad_id):
        batches = real_batches(chosen, pack, tokens, pad_id)
        built.append(sum(b.n_tokens for b in batches))
        return batches

    monkeypatch.setattr(objective, "batches", counting_batches)
    measured = {}

    def fake_peak(run_pass, device):
        def measure(tokens):
            run_pass(tokens)
            assert all(p.grad is None for p in params)  # freed after each pass
            measured[tokens] = built[-1]
            return 10_000 + 100 * built[-1]
        return measure

    monkeypatch.setattr(memory, "cuda_pass_peak", fake_peak)
    # room for 120 tokens a pass
    monkeypatch.setattr(memory, "cuda_budget", lambda device, optimizer: 10_000 + 100 * 120)
    cfg = TrainConfig(train_file="x").resolve(len(items), lengths)
    tokens = memory.measure_batch_tokens(loss_fn, objective, items, lengths, params, cfg,
                                               torch.device("cpu"), contextlib.nullcontext, 0)
    unit = max(lengths)
    assert list(measured)[:2] == [unit, 2 * unit]  # the longest example, then two
    assert tokens % unit == 0 and measured[tokens] <= 120
    assert all(0 < measured[n] <= n for n in measured)  # whole examples up to the size


def test_auto_is_refused_for_fsdp():
    with pytest.raises(UsageError, match="batch-tokens auto"):
        TrainConfig(train_file="x", distributed="fsdp", batch_tokens="auto")


def test_dpo_measures_passes_of_whole_pairs(tiny_model_dir, tmp_path, monkeypatch):
    """DPO's passes hold both answers of each pair; the measurement runs them before the
    reference log-probabilities exist (they are zeros then, which costs the same memory)."""
    import json

    from tunesmith.data.formats import read_dataset
    from tunesmith.modeling import load_model, load_tokenizer
    from tunesmith.training.preference import PreferenceObjective

    rows = [{"input": {"messages": [{"role": "user", "content": f"Greet {n}"}]},
             "preferred_output": [{"role": "assistant", "content": f"Hello {n}!"}],
             "non_preferred_output": [{"role": "assistant", "content": "No."}]}
            for n in ("Ana", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal") * 5]  # 1/16: 2+ pairs
    (tmp_path / "pref.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tok = load_tokenizer(str(tiny_model_dir))
    objective = PreferenceObjective(0.1)
    pairs = [objective.tokenize(tok, e, 1024)
             for e in read_dataset(tmp_path / "pref.jsonl").examples]
    lengths = [len(p.input_ids) for p in pairs]
    model = load_model(str(tiny_model_dir))
    loss_fn = objective.loss(model)
    params = list(model.parameters())
    pairs_seen = []
    real = objective.batches

    def counting(chosen, pack, tokens, pad_id):
        batches = real(chosen, pack, tokens, pad_id)
        pairs_seen.append(sum(b.n_pairs for b in batches))
        return batches

    monkeypatch.setattr(objective, "batches", counting)
    monkeypatch.setattr(memory, "cuda_pass_peak", lambda run_pass, device: lambda n: (
        run_pass(n), 1000 * pairs_seen[-1])[1])
    monkeypatch.setattr(memory, "cuda_budget", lambda device, optimizer: 2500)  # 2 pairs fit
    cfg = TrainConfig(train_file="x", method="dpo").resolve(len(pairs), lengths)
    tokens = memory.measure_batch_tokens(loss_fn, objective, pairs, lengths, params, cfg,
                                         torch.device("cpu"), contextlib.nullcontext, 0)
    assert tokens == 2 * max(lengths) and pairs_seen[:2] == [1, 2]
    assert all(p.grad is None for p in params)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="measures a GPU's memory")
def test_on_cuda_the_measured_size_fits_its_budget(monkeypatch):
    """bench/gpu_check.sh runs this: real peaks from the CUDA allocator, a budget of 200 MB
    above what the weights take."""
    from tunesmith.data.render import Tokenized
    from tunesmith.modeling import build_tiny_model
    from tunesmith.training.objectives import Objective

    device = torch.device("cuda")
    model = build_tiny_model(8192, hidden_size=256, num_layers=4, max_positions=4096).to(device)
    objective = Objective("lm", [])
    loss_fn = objective.loss(model)
    g = torch.Generator().manual_seed(0)
    items = [Tokenized(ids, ids, False) for ids in
             (torch.randint(0, 8192, (512,), generator=g).tolist() for _ in range(64))]
    lengths = [512] * 64
    params = list(model.parameters())
    budget = torch.cuda.memory_allocated(device) + 200 * MB
    monkeypatch.setattr(memory, "cuda_budget", lambda device, optimizer: budget)
    cfg = TrainConfig(train_file="x").resolve(len(items), lengths)

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16)

    tokens = memory.measure_batch_tokens(loss_fn, objective, items, lengths, params, cfg,
                                               device, autocast, 0)
    assert tokens % 512 == 0 and 512 <= tokens <= memory.epoch_cap(lengths) == 2048
    peak = memory.cuda_pass_peak(lambda n: _one_pass(loss_fn, objective, items, n, autocast,
                                                     params, device), device)(tokens)
    assert peak <= budget


def _one_pass(loss_fn, objective, items, tokens, autocast, params, device):
    chosen = items[: tokens // 512]
    for batch in objective.batches(chosen, True, tokens, 0):
        with autocast():
            loss_fn(batch.to(device))[0].backward()
    for p in params:
        p.grad = None
