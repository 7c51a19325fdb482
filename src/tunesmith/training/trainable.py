"""The model a run trains: loaded in the dtypes its precision asks for (and 4-bit for QLoRA),
with its method applied (LoRA adapters, or every weight trainable).

    precision   autocast   frozen weights          trained weights and AdamW state
    fp32        -          fp32                    fp32
    bf16        bf16       bf16 (LoRA), fp32 (FSDP LoRA: one dtype per shard group)   fp32
    bf16-true   bf16       bf16                    bf16
    auto        bf16 where the device is fast at it (a GPU, a CPU with AVX512-BF16/AMX), else fp32
    --quantize 4bit: the frozen linear layers in NF4, their matmuls in the autocast dtype
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from tunesmith.config import TrainConfig
from tunesmith.modeling import ModelRef, load_model, supports_bf16
from tunesmith.training.methods import PREPARE
from tunesmith.training.quantization import keep_training_layout, quantization_config


@dataclass(frozen=True)
class Numerics:
    """How a run computes (autocast) and stores (bf16 or fp32) its weights."""

    autocast_bf16: bool
    true_bf16: bool
    """Every weight, gradient and optimizer state in bf16."""

    @classmethod
    def of(cls, precision: str, device: torch.device) -> Numerics:
        bf16 = precision in ("bf16", "bf16-true") or (precision == "auto"
                                                      and supports_bf16(device))
        return cls(bf16, precision == "bf16-true")

    def autocast(self, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
        """A factory of the context each forward pass runs in."""
        if self.autocast_bf16:
            return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext

    def describe(self) -> str:
        return ("bf16 weights and optimizer" if self.true_bf16 else
                "bf16 autocast" if self.autocast_bf16 else "fp32")


def trainable_model(config: TrainConfig, start: ModelRef, objective, device: torch.device,
                    numerics: Numerics, *, fsdp: bool) -> nn.Module:
    """`config.model` loaded for `objective` (or the adapter `start` continues), its method
    applied, trained weights in their training dtype."""
    # LoRA never updates the base weights, so under bf16 autocast they are stored in bf16: half
    # the memory, and no fp32->bf16 cast of every weight in every forward pass. The adapters
    # (and full fine-tuning's weights) stay fp32, as AdamW needs (unless bf16-true). Under FSDP
    # a shard group has one dtype: LoRA's frozen weights stay fp32 beside their adapters.
    frozen_bf16 = ((numerics.autocast_bf16 and config.method == "lora" and not fsdp)
                   or numerics.true_bf16)
    frozen_dtype = torch.bfloat16 if frozen_bf16 else None
    quantization = quantization_config(
        config.quantize, torch.bfloat16 if numerics.autocast_bf16 else torch.float32)
    if start.is_adapter:  # continued fine-tuning of an adapter: it keeps training (or, for
        # --method full, is merged into the weights that then all train)
        model = load_model(start, device=device, trainable=config.method == "lora",
                           dtype=frozen_dtype, quantization=quantization)
        if config.method == "full":
            model = model.merge_and_unload()
    else:
        model = objective.load(config.model, device=device, dtype=frozen_dtype,
                               quantization=quantization)
    if quantization is not None:
        keep_training_layout(model)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = PREPARE[config.method](model, config)
    trained_dtype = torch.bfloat16 if numerics.true_bf16 else torch.float32
    for p in model.parameters():
        if p.requires_grad and p.dtype != trained_dtype:
            p.data = p.data.to(trained_dtype)
    return model
