import time

import pytest
import torch

from tunesmith.errors import ModelError
from tunesmith.modeling import build_tiny_model, load_model, load_tokenizer, resolve_model


def test_alias_resolves_to_the_shipped_gguf():
    ref = resolve_model("smollm2-135m-instruct")
    assert ref.kind == "alias" and ref.source.endswith(".gguf")
    assert resolve_model(None).spec == "smollm2-135m-instruct"


def test_specs_are_classified(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path / "m")).kind == "local"
    assert resolve_model("Qwen/Qwen2.5-0.5B-Instruct").kind == "hub"
    with pytest.raises(ModelError, match="no such GGUF"):
        resolve_model(str(tmp_path / "x.gguf"))
    with pytest.raises(ModelError, match="neither config.json"):
        (tmp_path / "empty").mkdir()
        resolve_model(str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="no such file or folder"):
        resolve_model("./not/here")


def test_unreachable_hub_fails_fast_naming_offline_options(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    start = time.monotonic()
    with pytest.raises(ModelError) as err:
        load_tokenizer("nobody-here/no-such-model")
    assert time.monotonic() - start < 10
    assert "cannot be reached" in str(err.value) and "smollm2-135m-instruct" in str(err.value)


def test_tiny_model_runs_with_the_real_tokenizer(tokenizer):
    model = build_tiny_model(len(tokenizer))
    ids = tokenizer("hello there", return_tensors="pt")["input_ids"]
    logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer))
    assert sum(p.numel() for p in model.parameters()) < 2_000_000


def test_local_folder_round_trip(tmp_path, tokenizer):
    model = build_tiny_model(len(tokenizer), arch="gpt2")
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    assert load_tokenizer(str(tmp_path)).chat_template == tokenizer.chat_template


@pytest.mark.slow
def test_gguf_converts_once_then_loads_fast(tmp_path):
    """The embedded model: the first load converts the GGUF, later loads read safetensors."""
    start = time.monotonic()
    tok = load_tokenizer("smollm2-135m-instruct", home=tmp_path)
    first = time.monotonic() - start
    converted = list((tmp_path / "models").iterdir())
    assert len(converted) == 1 and (converted[0] / "model.safetensors").is_file()
    mtime = (converted[0] / "model.safetensors").stat().st_mtime_ns
    start = time.monotonic()
    model = load_model("smollm2-135m-instruct", home=tmp_path)
    second = time.monotonic() - start
    assert (converted[0] / "model.safetensors").stat().st_mtime_ns == mtime
    assert second < first and second < 5
    ids = tok.apply_chat_template([{"role": "user", "content": "Say hi"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)["input_ids"]
    out = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids.shape[1]
