"""FSDP2 (`--distributed fsdp` under torchrun): weights, gradients and AdamW state sharded over
the processes, one `fully_shard` group per decoder layer plus a root group (embeddings, final
norm, output layer) on the loss module, whose forward is what the loop calls.

    process 0: layers' shards [0::2]     all-gather a layer's weights just before it runs,
    process 1: layers' shards [1::2]     free them after; reduce-scatter its gradients

Every process must run the same number of forward passes (each pass all-gathers): the loop pads
a process with fewer micro-batches with passes whose loss is scaled to 0.

Checkpoints are gathered: rank 0 writes the same files as a single-process run (the full adapter
or model, a full optimizer state), so `--resume`, `final/` and `eval` need no sharded reader,
and a run may resume on another process count. The price is one full copy in rank 0's CPU
memory while saving.
"""

from __future__ import annotations

import torch
from torch import nn

from tunesmith.modeling import hf_model


def shard(loss_fn: nn.Module, model: nn.Module, device: torch.device, world: int) -> nn.Module:
    """Shard `model` inside `loss_fn` over `world` processes; returns `loss_fn`, now the root."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world,))
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh)
    fully_shard(loss_fn, mesh=mesh)
    if hasattr(loss_fn, "sequence_logps"):  # DPO's reference pass calls it instead of forward
        from torch.distributed.fsdp import register_fsdp_forward_method

        register_fsdp_forward_method(loss_fn, "sequence_logps")
    return loss_fn


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    inner = hf_model(model)
    body = inner.get_decoder() if hasattr(inner, "get_decoder") else inner.model
    layers = getattr(body, "layers", None) or getattr(body, "h", None)
    if layers is None:
        raise ValueError(f"{type(inner).__name__}: no decoder layers found to shard")
    return list(layers)


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer,
               trainable_only: bool) -> tuple[dict, dict]:
    """The whole model's (or only its trainable parameters') and optimizer's state, gathered to
    CPU on every process: a collective, all processes must call it."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(model, options=options)
    # a tied weight (output layer = embeddings) comes back under both names, as two copies that
    # save_pretrained can no longer see are one: keep its first name, as an unsharded save does
    first: dict[int, str] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if first.setdefault(id(p), name) != name:
            state.pop(name, None)
    if trainable_only:
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        state = {k: v for k, v in state.items() if k in names}
    return state, get_optimizer_state_dict(model, optimizer, options=options)


def load_full_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict,
                    optim_state: dict) -> None:
    """Load gathered states (as `full_state` returns them) into the sharded model/optimizer."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, strict=False)
    set_model_state_dict(model, state, options=options)
    set_optimizer_state_dict(model, optimizer, optim_state, options=options)


def peft_names(model: nn.Module) -> dict[str, str]:
    """PEFT's saved adapter key -> the model's parameter name (the adapter name removed)."""
    return {n.replace(".default.", "."): n for n, p in model.named_parameters()
            if p.requires_grad}
