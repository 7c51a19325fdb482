"""The chat engine: LoRA models share one copy of their base; batches mix nothing across models."""

from __future__ import annotations

import threading

import torch

from tunesmith.generation import Sampling
from tunesmith.serve.engine import Engine, Row


def _adapter(base_dir, folder, seed):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    torch.manual_seed(seed)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)  # B starts at 0; make the adapter change the output
    model.save_pretrained(folder)
    return str(folder)


def _complete(engine, key, prompt):
    done, tokens = threading.Event(), []

    def deliver(step):
        tokens.append(step.token)
        if step.last:
            done.set()

    engine.submit(Row(key, prompt, Sampling(6, 0.0), deliver))
    assert done.wait(60)
    return tokens


def test_adapters_share_the_base_and_change_the_output(tiny_model_dir, tmp_path):
    engine = Engine(max_batch=4)
    base = str(tiny_model_dir)
    one = _adapter(base, tmp_path / "one", 1)
    two = _adapter(base, tmp_path / "two", 2)
    prompt = engine.render(base, [{"role": "user", "content": "hello"}])
    first = _complete(engine, base, prompt)
    outputs = {key: _complete(engine, key, prompt) for key in (one, two, base)}
    assert len(engine._bases) == 1  # one copy of the base weights for all three models
    assert len({tuple(v) for v in outputs.values()}) == 3
    assert outputs[base] == first  # the adapters are off for the base model
    assert _complete(engine, one, prompt) == outputs[one]  # switching adapters back and forth
