"""Packed attention kernels: the per-example loop (CPU, the reference), FlexAttention with a
document mask, and flash-attn's varlen kernel (where installed) give the same loss and
gradients on packed rows."""

import importlib.util

import pytest
import torch

from tunesmith.data.packing import collate_packed
from tunesmith.data.render import IGNORE_INDEX, Tokenized
from tunesmith.modeling import build_tiny_model
from tunesmith.training.attention import kernel_for
from tunesmith.training.loss import CausalLMLoss

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def loss_and_grads(kernel: str, monkeypatch, grad: bool = True):
    monkeypatch.setenv("TUNESMITH_PACKED_ATTENTION", kernel)
    model = build_tiny_model(2048, seed=4, num_layers=2, max_positions=512).to(DEVICE)
    model.requires_grad_(grad)
    g = torch.Generator().manual_seed(5)
    items = [Tokenized(ids := torch.randint(0, 2048, (n,), generator=g).tolist(),
                       [IGNORE_INDEX] * 5 + ids[5:]) for n in (33, 70, 12, 51)]
    batch = collate_packed(items, [[0, 1], [2, 3]], pad_id=0).to(DEVICE)  # padding in row 0
    total, n, _ = CausalLMLoss(model)(batch)
    if not grad:
        return total.detach(), {}
    total.backward()
    return total.detach(), {k: p.grad for k, p in model.named_parameters()}


KERNELS = ["flex"] + (["flash"] if importlib.util.find_spec("flash_attn") and
                      torch.cuda.is_available() else [])


@pytest.mark.parametrize("kernel", KERNELS)
def test_varlen_kernels_equal_the_per_example_loop(kernel, monkeypatch):
    # FlexAttention has no backward pass on CPU (torch 2.13 raises NotImplementedError): there
    # the loss is compared, and the gradients on a GPU (bench/gpu_check.sh runs this test).
    grad = DEVICE == "cuda"
    ref_loss, ref_grads = loss_and_grads("segments", monkeypatch, grad)
    loss, grads = loss_and_grads(kernel, monkeypatch, grad)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    for k in ref_grads:
        torch.testing.assert_close(grads[k], ref_grads[k], rtol=1e-4, atol=1e-6)


def test_the_kernel_follows_the_device(monkeypatch):
    monkeypatch.delenv("TUNESMITH_PACKED_ATTENTION", raising=False)
    assert kernel_for(torch.device("cpu")) == "segments"
    expected = "flash" if importlib.util.find_spec("flash_attn") else "flex"
    assert kernel_for(torch.device("cuda")) == expected
