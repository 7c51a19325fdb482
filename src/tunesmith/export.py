"""Export a fine-tuned model for use outside tunesmith.

    hf     a Hugging Face folder: the LoRA adapter as is (PEFT loads it on its base), or, with
           `merge`, the adapter merged into the base weights (plain transformers loads it)
    gguf   one GGUF file (llama.cpp, Ollama, LM Studio): weights merged, the tokenizer, its
           merges, special tokens and chat template inside; Llama-architecture models

The GGUF writer follows llama.cpp's `convert_hf_to_gguf.py` for Llama: tensor names from gguf's
name map, and the query/key projections permuted from Hugging Face's rotate-half layout to the
interleaved one llama.cpp uses. transformers undoes that permutation when it loads a GGUF, so a
round trip reproduces the logits (tested).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from tunesmith.atomic import atomic_dir
from tunesmith.errors import UsageError
from tunesmith.modeling import (
    adapter_base,
    load_model,
    load_tokenizer,
    model_dir,
    resolve_model,
    run_final_dir,
)
from tunesmith.outputs import check_parent

GGUF_ARCHITECTURES = ("llama",)


def export(spec: str, fmt: Literal["hf", "gguf"], out: str | Path, *, merge: bool = False,
           dtype: Literal["f16", "f32"] = "f16") -> Path:
    """Write the model `spec` (a run folder, its final/, or any model spec) to `out`.

    Raises:
        UsageError: `out` exists, or the model's architecture cannot be written as GGUF.
        ModelError: the model cannot be loaded.
    """
    out = check_parent(out, "--out")
    if out.exists():
        raise UsageError(f"{out} already exists; choose another --out.")
    spec = run_final_dir(spec)
    if fmt == "hf":
        return _export_hf(spec, out, merge)
    if fmt == "gguf":
        return _export_gguf(spec, out, dtype)
    raise UsageError(f"--format must be hf or gguf, not {fmt!r}.")


def _merged(spec: str):
    model = load_model(spec)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return model.eval()


def _export_hf(spec: str, out: Path, merge: bool) -> Path:
    ref = resolve_model(spec)
    tokenizer = load_tokenizer(spec)
    with atomic_dir(out) as tmp:
        if ref.is_adapter and not merge:
            for f in Path(ref.source).iterdir():
                if f.is_file() and f.name != "tunesmith.json":
                    shutil.copy2(f, tmp / f.name)
        else:
            _merged(spec).save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out


def _export_gguf(spec: str, out: Path, dtype: str) -> Path:
    import gguf
    import numpy as np
    import torch

    model = _merged(spec)
    config = model.config
    if config.model_type not in GGUF_ARCHITECTURES:
        raise UsageError(f"GGUF export writes Llama-architecture models (SmolLM2, Llama, ...); "
                         f"this one is {config.model_type!r}. Export --format hf and convert it "
                         "with llama.cpp's convert_hf_to_gguf.py.")
    tokenizer = load_tokenizer(spec)
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(handle)
    try:
        writer = gguf.GGUFWriter(tmp_name, "llama")
        writer.add_name(Path(spec).name)
        writer.add_context_length(config.max_position_embeddings)
        writer.add_embedding_length(config.hidden_size)
        writer.add_block_count(config.num_hidden_layers)
        writer.add_feed_forward_length(config.intermediate_size)
        writer.add_head_count(heads)
        writer.add_head_count_kv(kv_heads)
        writer.add_rope_freq_base(float(_rope_theta(config)))
        writer.add_layer_norm_rms_eps(config.rms_norm_eps)
        writer.add_rope_dimension_count(head_dim)
        writer.add_vocab_size(config.vocab_size)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16"
                             else gguf.LlamaFileType.ALL_F32)
        _add_tokenizer(writer, tokenizer, spec)
        state = model.state_dict()
        for name, tensor in state.items():
            if name == "lm_head.weight" and config.tie_word_embeddings:
                continue
            new = names.get_name(name, try_suffixes=(".weight", ".bias"))
            if new is None:
                raise UsageError(f"GGUF export: no GGUF name for tensor {name}.")
            data = tensor.detach().to(torch.float32)
            if name.endswith("q_proj.weight"):
                data = _permute(data, heads, heads)
            elif name.endswith("k_proj.weight"):
                data = _permute(data, heads, kv_heads)
            array = data.numpy()
            if dtype == "f16" and array.ndim > 1:
                array = array.astype(np.float16)
            writer.add_tensor(new, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp_name, out)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return out


def _rope_theta(config) -> float:
    rope = getattr(config, "rope_parameters", None) or {}
    return rope.get("rope_theta") or getattr(config, "rope_theta", None) or 10000.0


def _permute(weight, n_head: int, n_head_kv: int):
    """Hugging Face's rotate-half query/key rows -> llama.cpp's interleaved pairs."""
    if n_head_kv != n_head:
        n_head = n_head_kv
    return (weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def _add_tokenizer(writer, tokenizer, spec: str) -> None:
    """Vocabulary, merges, special ids and chat template of a byte-level BPE tokenizer."""
    import gguf

    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        try:
            vocab = gguf.vocab.BpeVocab(Path(folder))
        except (FileNotFoundError, ValueError) as e:
            raise UsageError(f"GGUF export handles byte-level BPE tokenizers (GPT-2 style); "
                             f"this one is not: {e}") from e
        tokens, types = [], []
        for text, _score, kind in vocab.all_tokens():
            tokens.append(text)
            types.append(kind)
        added = {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
        types = [gguf.TokenType.CONTROL if (t.decode() if isinstance(t, bytes) else t) in added
                 else k for t, k in zip(tokens, types)]
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(_pre_tokenizer(spec))
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        special = gguf.SpecialVocab(Path(folder), load_merges=True, n_vocab=len(tokens))
        special.add_to_gguf(writer, quiet=True)
        config = json.loads((Path(folder) / "tokenizer_config.json").read_text())
        writer.add_add_bos_token(bool(config.get("add_bos_token", False)))


def _pre_tokenizer(spec: str) -> str:
    """llama.cpp picks its pre-tokenizer regex by this name. A model converted from a GGUF (the
    embedded default, and fine-tunes of it) keeps its original's; otherwise 'default'
    (llama.cpp's own converter fingerprints the tokenizer against its table of known models)."""
    import gguf

    try:
        ref = resolve_model(spec)
        folder = Path(adapter_base(Path(ref.source), None) if ref.is_adapter else model_dir(ref))
        source = json.loads((folder / "tunesmith-source.json").read_text())["gguf"]
        field = gguf.GGUFReader(source).fields.get("tokenizer.ggml.pre")
        if field is not None:
            return bytes(field.parts[field.data[0]]).decode()
    except (OSError, ValueError, KeyError):
        pass
    return "default"
