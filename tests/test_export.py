"""`export`: Hugging Face folders (adapter or merged) and GGUF files that load back to the same
logits."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunesmith.config import TrainConfig
from tunesmith.errors import UsageError
from tunesmith.export import export
from tunesmith.modeling import build_tiny_model, load_model
from tunesmith.training import train

IDS = torch.tensor([[1, 400, 2000, 31, 7, 9000, 2]])


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, tiny_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    train(TrainConfig(train_file=str(tiny_data_dir / "train.jsonl"), out=str(out),
                      model=str(tiny_model_dir), epochs=1, batch_size=3, lr=0.05, quiet=True,
                      precision="fp32"))
    return out


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


def _reference(run) -> torch.Tensor:
    merged = load_model(str(run / "final")).merge_and_unload()
    return _logits(merged.eval())


def test_hf_adapter_and_merged(lora_run, tmp_path):
    from peft import AutoPeftModelForCausalLM

    reference = _reference(lora_run)
    adapter = export(str(lora_run), "hf", tmp_path / "adapter")
    assert (adapter / "adapter_config.json").is_file() and (adapter / "tokenizer.json").is_file()
    torch.testing.assert_close(_logits(AutoPeftModelForCausalLM.from_pretrained(adapter)),
                               reference, atol=1e-5, rtol=0)
    merged = export(str(lora_run), "hf", tmp_path / "merged", merge=True)
    assert not (merged / "adapter_config.json").exists()
    torch.testing.assert_close(_logits(AutoModelForCausalLM.from_pretrained(merged)), reference,
                               atol=1e-5, rtol=0)
    with pytest.raises(UsageError, match="already exists"):
        export(str(lora_run), "hf", merged)


def test_gguf_round_trip(lora_run, tmp_path, tokenizer):
    reference = _reference(lora_run)
    path = export(str(lora_run), "gguf", tmp_path / "model.gguf", dtype="f32")
    back = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name)
    torch.testing.assert_close(_logits(back), reference, atol=1e-4, rtol=0)
    tok = AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name)
    text = "<|im_start|>user\nmy bill doubled, why?<|im_end|>"
    assert tok(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert tok.chat_template == tokenizer.chat_template
    f16 = export(str(lora_run), "gguf", tmp_path / "half.gguf")
    embedding_f32 = 49152 * 32 * 4  # the tiny model's largest tensor, halved in f16
    assert path.stat().st_size - f16.stat().st_size > 0.45 * embedding_f32
    assert not list(tmp_path.glob(".*.tmp"))  # written under a temporary name, then renamed


def test_gguf_refuses_other_architectures(tokenizer, tmp_path):
    folder = tmp_path / "gpt2"
    build_tiny_model(len(tokenizer), arch="gpt2").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    with pytest.raises(UsageError, match="Llama-architecture"):
        export(str(folder), "gguf", tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_cli(lora_run, tmp_path):
    r = subprocess.run([sys.executable, "-m", "tunesmith", "export", str(lora_run), "--format",
                        "hf", "--merge", "--out", str(tmp_path / "m")], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "wrote" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-m", "tunesmith", "export", str(lora_run), "--format",
                        "hf", "--out", str(tmp_path / "m")], capture_output=True, text=True)
    assert r.returncode == 2 and "already exists" in r.stderr and "Traceback" not in r.stderr
