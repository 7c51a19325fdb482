"""The training loss: chunked output layer against the plain one on a 152k-vocabulary model
(Qwen2.5's size): the same loss and gradients, a fraction of the peak memory."""

import json
import subprocess
import sys

import pytest
import torch

from tunesmith.data.packing import collate_packed
from tunesmith.data.render import IGNORE_INDEX, Tokenized
from tunesmith.modeling import build_tiny_model, hf_model
from tunesmith.training import loss as loss_module
from tunesmith.training.loss import CausalLMLoss

VOCAB = 152_064


def batch_of(n_answer: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(3):
        ids = torch.randint(0, VOCAB, (n_answer + 20,), generator=g).tolist()
        items.append(Tokenized(ids, [IGNORE_INDEX] * 20 + ids[20:]))
    return collate_packed(items, [[0, 1, 2]], pad_id=0)


def loss_and_grads(chunk_elements: int, monkeypatch):
    monkeypatch.setattr(loss_module, "CHUNK_ELEMENTS", chunk_elements)
    model = build_tiny_model(VOCAB, seed=1, max_positions=1024)
    fn = CausalLMLoss(model)
    total, n, correct = fn(batch_of(100))
    total.backward()
    return total.detach(), int(n), int(correct), {k: p.grad.clone() for k, p in
                                                  model.named_parameters() if p.grad is not None}


def test_chunked_output_layer_gives_the_same_loss_and_gradients(monkeypatch):
    whole = loss_and_grads(2**40, monkeypatch)
    chunked = loss_and_grads(VOCAB * 37, monkeypatch)  # 37-row chunks: 9 of them, one ragged
    torch.testing.assert_close(chunked[0], whole[0], rtol=1e-6, atol=1e-5)
    assert chunked[1:3] == whole[1:3] == (300, whole[2])
    assert whole[3].keys() == chunked[3].keys()
    assert "model.embed_tokens.weight" in whole[3]  # tied to the output layer: gets its gradient
    for k in whole[3]:  # fp32 sums in another order: equal to rounding
        torch.testing.assert_close(chunked[3][k], whole[3][k], rtol=1e-5, atol=1e-6)


PEAK = """
import json, re, sys, torch
from tests.training.test_loss import batch_of, VOCAB
from tunesmith.modeling import build_tiny_model
from tunesmith.training import loss as loss_module
from tunesmith.modeling import hf_model
from tunesmith.training.loss import CausalLMLoss
loss_module.CHUNK_ELEMENTS = int(sys.argv[1])
fn = CausalLMLoss(build_tiny_model(VOCAB, seed=1, max_positions=1024))
batch = batch_of(300)
def high_water_kb():
    # this process's own peak RSS (VmHWM starts afresh at exec; getrusage's ru_maxrss would
    # start at the parent's, a test process grown large)
    status = open("/proc/self/status").read()
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
before = high_water_kb()
total, n, _ = fn(batch)
total.backward()
after = high_water_kb()
print(json.dumps({"peak_mb": (after - before) / 1024, "loss": total.item()}))
"""


@pytest.mark.slow  # two 1.5 GB processes; a memory measurement, run by make test-slow
def test_chunked_output_layer_lowers_peak_memory():
    """900 answer tokens x 152k words: 0.55 GB of fp32 logits at once, then their gradient (the
    two runs are one after the other, so each has the machine's threads)."""
    def run(chunk_elements: int) -> dict:
        out = subprocess.run([sys.executable, "-c", PEAK, str(chunk_elements)], check=True,
                             capture_output=True, text=True, timeout=300)
        return json.loads(out.stdout.strip().splitlines()[-1])

    whole, chunked = run(2**40), run(2**25)  # chunks of 220 rows
    assert abs(whole["loss"] - chunked["loss"]) < 1e-3 * abs(whole["loss"])
    assert whole["peak_mb"] > 400, whole
    assert chunked["peak_mb"] < 0.5 * whole["peak_mb"], (whole, chunked)


def grads_with(checkpointing: bool, lora: bool):
    from tunesmith.config import TrainConfig
    from tunesmith.training.methods import PREPARE

    model = build_tiny_model(4096, seed=2, num_layers=3, max_positions=512)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = PREPARE["lora" if lora else "full"](model, TrainConfig(train_file="x", lora_r=4))
    torch.manual_seed(0)
    for name, p in model.named_parameters():  # LoRA's B starts at 0: give it a value
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    g = torch.Generator().manual_seed(3)
    items = [Tokenized(ids := torch.randint(0, 4096, (n,), generator=g).tolist(),
                       [IGNORE_INDEX] * 10 + ids[10:]) for n in (40, 25, 60)]
    calls = []
    mlp = type(hf_model(model).model.layers[1].mlp)
    forward = mlp.forward
    mlp.forward = lambda self, x: (calls.append(1), forward(self, x))[1]  # counts every layer's
    loss_fn = CausalLMLoss(model).train()  # as the loop runs it (checkpointing needs it)
    total, _, _ = loss_fn(collate_packed(items, [[0, 1, 2]], pad_id=0))
    total.backward()
    mlp.forward = forward
    assert len(calls) == (6 if checkpointing else 3)  # 3 layers, recomputed in the backward
    return {k: p.grad for k, p in model.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_gives_the_same_gradients():
    for lora in (True, False):
        plain, recomputed = grads_with(False, lora), grads_with(True, lora)
        assert plain.keys() == recomputed.keys() and len(plain) > 4
        for k in plain:
            torch.testing.assert_close(recomputed[k], plain[k], rtol=1e-5, atol=1e-6)
