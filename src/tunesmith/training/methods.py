"""What differs between LoRA and full fine-tuning: which weights train, and what is saved.

Both share the loop in `loop.py`; a method is a pair of functions here, picked by name.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from tunesmith.config import TrainConfig


def prepare_lora(model: nn.Module, config: TrainConfig) -> nn.Module:
    """Wrap `model` with LoRA adapters (PEFT); only the adapters train. A model that already
    carries a trainable adapter (continued fine-tuning) keeps it, with its own rank and targets."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if isinstance(model, PeftModel):
        _no_input_cast(model)
        return model

    targets: str | list[str] = config.lora_targets
    if targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    # A head's task type makes PEFT train the new output layer in full (modules_to_save).
    task_type = {"lm": "CAUSAL_LM", "classifier": "SEQ_CLS", "token": "TOKEN_CLS"}[config.head]
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=targets,
                      task_type=task_type,
                      # the head trains in full; "all-linear" would also put an adapter on it
                      exclude_modules=["score", "classifier"] if config.head != "lm" else None)
    model = get_peft_model(model, lora)
    _no_input_cast(model)
    return model


def _no_input_cast(model: nn.Module) -> None:
    # PEFT casts each adapted layer's input to the adapters' dtype (fp32) before the adapter
    # matmul, which bf16 autocast then casts back: two copies of every input, one kept for the
    # backward pass. Without the cast the adapter runs on the bf16 input directly (autocast
    # would use bf16 anyway): peak RSS of the 256-example SST-2 bench run 2484 -> 2249 MB.
    for module in model.modules():
        if hasattr(module, "cast_input_dtype_enabled"):
            module.cast_input_dtype_enabled = False


def prepare_full(model: nn.Module, config: TrainConfig) -> nn.Module:
    """Every weight trains."""
    model.requires_grad_(True)
    return model


PREPARE = {"lora": prepare_lora, "full": prepare_full}


def save_weights(model: nn.Module, folder: Path, state_dict: dict | None = None) -> None:
    """LoRA: the adapter (adapter_config.json + adapter_model.safetensors). Full: the model
    (config.json + model.safetensors). Both load with plain transformers/PEFT. `state_dict`:
    the weights gathered from a sharded model (FSDP), under the model's parameter names."""
    if state_dict is None:
        model.save_pretrained(folder, safe_serialization=True)
    else:
        model.save_pretrained(folder, safe_serialization=True, state_dict=state_dict)


def load_weights(model: nn.Module, folder: Path, method: str) -> None:
    """Load weights saved by `save_weights` into the already prepared `model`, in place."""
    from safetensors.torch import load_file

    if method == "lora":
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))
    else:
        state = load_file(folder / "model.safetensors")
        missing, unexpected = model.load_state_dict(state, strict=False)
        # tied output embeddings are not stored twice
        missing = [k for k in missing if not k.endswith("lm_head.weight")]
        if missing or unexpected:
            raise RuntimeError(f"checkpoint {folder} does not match the model: "
                               f"missing {missing[:3]}, unexpected {unexpected[:3]}")
