"""Memory levers from bitsandbytes on a tiny random model (its CPU kernels): 8-bit AdamW and
QLoRA (LoRA on a 4-bit base)."""

import json
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.training.interrupt import dies_after_epoch
from tunesmith.config import TrainConfig
from tunesmith.errors import UsageError
from tunesmith.training import train

bnb = pytest.importorskip("bitsandbytes")


def config(tiny_model_dir, tiny_data_dir, out, **kw):
    base = {"train_file": str(tiny_data_dir / "train.jsonl"),
                "val_file": str(tiny_data_dir / "validation.jsonl"), "out": str(out),
                "model": str(tiny_model_dir), "epochs": 3, "batch_size": 3, "quiet": True, "precision": "fp32",
                "lr": 3e-3}
    return TrainConfig(**{**base, **kw})


def losses(run) -> list[float]:
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["train_loss"] for r in records if "train_loss" in r]


def test_8bit_adamw_keeps_a_quarter_of_the_state_and_learns(tiny_model_dir, tiny_data_dir,
                                                             tmp_path):
    from tunesmith.training.optimizers import build_optimizer, state_bytes

    result = train(config(tiny_model_dir, tiny_data_dir, tmp_path / "run", method="full",
                          optimizer="adamw-8bit"))
    saved = torch.load(tmp_path / "run" / "checkpoints" / "epoch-003" / "optimizer.pt",
                       weights_only=False)["state"]
    moments = [v for state in saved.values()
               for k, v in state["__bnb_optimizer_quant_state__"].items() if k.startswith("state")]
    # the embedding's two moments (49152 x 32) are uint8; the small layers keep 32-bit moments
    assert {m.dtype for m in moments if m.numel() > 4096} == {torch.uint8}
    assert sum(m.numel() > 4096 for m in moments) == 2
    run_losses = losses(tmp_path / "run")
    assert run_losses[-1] < 0.95 * run_losses[0]  # as AdamW: 10.89 -> 9.84 (8-bit: 9.85)

    params = [p for p in result.model.parameters()]
    sizes = {}
    for name in ("adamw", "adamw-8bit"):
        optimizer = build_optimizer(name, params, lr=1e-3, weight_decay=0.0,
                                    device=torch.device("cpu"))
        for p in params:
            p.grad = torch.zeros_like(p)
        optimizer.step()
        sizes[name] = state_bytes(optimizer)
    assert sizes["adamw-8bit"] < 0.3 * sizes["adamw"]  # 2 bytes a parameter against 8


def test_8bit_adamw_resumes_exactly(tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch):
    kw = {"method": "full", "optimizer": "adamw-8bit"}
    straight = train(config(tiny_model_dir, tiny_data_dir, tmp_path / "a", **kw))
    with dies_after_epoch(monkeypatch, 1):
        train(config(tiny_model_dir, tiny_data_dir, tmp_path / "b", **kw))
    resumed = train(config(tiny_model_dir, tiny_data_dir, tmp_path / "b", resume=True, **kw))
    assert resumed.steps == straight.steps
    a = load_file(tmp_path / "a" / "final" / "model.safetensors")
    b = load_file(tmp_path / "b" / "final" / "model.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0)
    with pytest.raises(UsageError, match="optimizer"):  # a run cannot change optimizer midway
        train(config(tiny_model_dir, tiny_data_dir, tmp_path / "b", resume=True, method="full"))


def test_qlora_trains_adapters_on_a_4bit_base(tiny_model_dir, tiny_data_dir, tmp_path):
    from peft import AutoPeftModelForCausalLM

    result = train(config(tiny_model_dir, tiny_data_dir, tmp_path / "run", method="qlora"))
    assert (result.config.method, result.config.quantize) == ("lora", "4bit")
    layers = [m for m in result.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 2 * 7  # q k v o gate up down in each of the 2 decoder layers
    assert all(m.weight.quant_state.quant_type == "nf4" for m in layers)
    train(config(tiny_model_dir, tiny_data_dir, tmp_path / "lora", method="lora"))
    q, full_precision = losses(tmp_path / "run"), losses(tmp_path / "lora")
    assert q[-1] < q[0] - 0.2  # it learns (10.89 -> 10.59), step by step as LoRA on the
    # full-precision base does (10.89 -> 10.58): 4-bit weights move each loss by ~0.01
    assert max(abs(a - b) for a, b in zip(q, full_precision, strict=True)) < 0.03
    # the adapter is a plain LoRA adapter: it loads on the full-precision base
    model = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "run" / "final")
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    saved = load_file(tmp_path / "run" / "final" / "adapter_model.safetensors")
    assert any(v.abs().sum() > 0 for k, v in saved.items() if "lora_B" in k)


def test_qlora_gradients_equal_lora_on_the_dequantized_weights(tiny_model_dir):
    """The adapters' gradients through the 4-bit base equal those through a full-precision
    model holding the same (dequantized) weights, also after an evaluation pass (which, on a
    CPU with AVX512-BF16, bitsandbytes would otherwise repack into a kernel with no backward)."""
    from peft import LoraConfig, get_peft_model

    from tunesmith.modeling import load_model
    from tunesmith.training.quantization import keep_training_layout, quantization_config

    quantized = load_model(str(tiny_model_dir), device="cpu",
                           quantization=quantization_config("4bit", torch.float32))
    keep_training_layout(quantized)
    plain = load_model(str(tiny_model_dir))
    modules = dict(plain.named_modules())
    for name, module in quantized.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            weight = bnb.functional.dequantize_4bit(module.weight.data, module.weight.quant_state)
            assert not torch.equal(weight, modules[name].weight)  # 4 bits lose something
            modules[name].weight.data = weight.to(torch.float32)
    lora = {"r": 4, "lora_alpha": 8, "target_modules": "all-linear", "task_type": "CAUSAL_LM"}
    models = []
    for model in (quantized, plain):
        torch.manual_seed(0)
        model = get_peft_model(model, LoraConfig(**lora))
        for name, p in model.named_parameters():
            if "lora_B" in name:  # B starts at 0; nonzero makes A's gradient nonzero too
                torch.manual_seed(hash(name) % 1000)
                p.data.normal_(0, 0.1)
        models.append(model)
    ids = torch.randint(0, 1000, (1, 24), generator=torch.Generator().manual_seed(1))
    grads = []
    for model in models:
        model.eval()
        with torch.no_grad():
            model(input_ids=ids)  # an evaluation pass first, as training does
        model.train()
        model(input_ids=ids, labels=ids).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == 2 * 2 * 7
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-5)
    first = next(n for n in grads[0] if "layers.0." in n and "lora_A" in n)
    assert grads[0][first].abs().sum() > 0  # the gradient reached the first layer


def test_quantize_needs_lora_and_bitsandbytes(tiny_model_dir, tiny_data_dir, tmp_path,
                                             monkeypatch):
    with pytest.raises(UsageError, match="4bit.*LoRA"):
        config(tiny_model_dir, tiny_data_dir, tmp_path / "r", method="full", quantize="4bit")
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if not installed
    with pytest.raises(UsageError, match="pip install 'tunesmith\\[quantize\\]'"):
        train(config(tiny_model_dir, tiny_data_dir, tmp_path / "r", method="qlora"))
    with pytest.raises(UsageError, match="adamw-8bit needs bitsandbytes"):
        train(config(tiny_model_dir, tiny_data_dir, tmp_path / "s", optimizer="adamw-8bit"))


def test_qlora_classifier_head_loads_with_plain_peft(tiny_model_dir, tiny_data_dir, tmp_path):
    from tunesmith.heads import load_head_model

    result = train(config(tiny_model_dir, tiny_data_dir, tmp_path / "run", method="qlora",
                          head="classifier", epochs=1))
    assert not isinstance(result.model.base_model.model.score.original_module, bnb.nn.Linear4bit)
    base_config = json.loads((result.final_dir / "base" / "config.json").read_text())
    assert "quantization_config" not in base_config  # the adapter applies to the plain base
    assert json.loads((result.final_dir / "tunesmith.json").read_text())["quantize"] == "4bit"
    model, _ = load_head_model(result.final_dir)
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
