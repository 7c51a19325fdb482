"""QLoRA: the frozen base model held in 4 bits while LoRA adapters train on top (Dettmers et
al. 2023: NF4 weights, double-quantized block scales, matmuls in the compute dtype).

    --method qlora            LoRA on a 4-bit base (the same as --method lora --quantize 4bit)
    --method dpo --quantize 4bit

A Llama-3-8B base takes ~5.7 GB instead of 16 GB (bf16). Only the linear layers inside the
decoder are quantized; the embeddings, the output layer and a task head stay in the weights'
dtype. The adapter is saved as any LoRA adapter: `eval`, `serve` and `export` apply it to the
base model at full precision, as the QLoRA paper's adapters are used (a small mismatch with the
4-bit base it was trained against). Needs bitsandbytes (CUDA; CPU from bitsandbytes 0.49).
"""

from __future__ import annotations

from typing import Literal

import torch

from tunesmith.training.optimizers import import_bitsandbytes

Quantize = Literal["none", "4bit"]
# kept in the weights' dtype: the output layer (tied to the embeddings in many models) and
# the task heads, which train in full
NOT_QUANTIZED = ["lm_head", "score", "classifier"]


def quantization_config(quantize: Quantize, compute_dtype: torch.dtype):
    """transformers' `BitsAndBytesConfig` for `quantize`, or None for "none"."""
    if quantize == "none":
        return None
    import_bitsandbytes("--quantize 4bit (--method qlora)")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype,
                              llm_int8_skip_modules=NOT_QUANTIZED)


def keep_training_layout(model: torch.nn.Module) -> None:
    """Stop bitsandbytes (>= 0.49) repacking 4-bit weights for its CPU inference kernel the
    first time a layer runs in eval mode without gradients (a validation pass): that kernel has
    no backward, so the gradient would no longer flow through the frozen base weights to the
    adapters of earlier layers. (Its "autograd kernel was not registered" warning is the sign.)"""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def quantized_bytes(model: torch.nn.Module) -> int:
    """Bytes of the model's weights as held (4-bit weights count half a byte a parameter)."""
    return sum(p.numel() * p.element_size() for p in model.parameters()) + sum(
        b.numel() * b.element_size() for b in model.buffers())
