"""The training loss, computed only where it is needed.

A classification answer is ~3 tokens of a ~80-token example, and the output layer maps each
position to 49,152 vocabulary logits. `CausalLMLoss` runs the transformer body on every token
but the output layer only on the positions that carry loss, which removes most of the output
layer's cost and all of its (tokens x vocabulary) activation memory. It is an `nn.Module` so
DistributedDataParallel can wrap it (DDP only syncs gradients of work done in its forward).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.data.packing import Batch
from tunesmith.data.render import IGNORE_INDEX


def hf_model(model: nn.Module) -> nn.Module:
    """The transformers model inside a PEFT wrapper (LoRA layers are injected in place, so
    calling its parts still runs the adapters)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


class CausalLMLoss(nn.Module):
    """Forward returns (sum of token losses, loss tokens, correctly predicted loss tokens)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from tunesmith.training.attention import use_packed_attention

        use_packed_attention(model)
        self.model = model
        inner = hf_model(model)
        self.body = inner.get_decoder()
        self.head = inner.get_output_embeddings()
        config = inner.config
        # A few families post-process logits; mirror them so the loss is the model's own.
        self.logit_scale = getattr(config, "logit_scale", None)
        self.softcap = getattr(config, "final_logit_softcapping", None)

    stats = ("mean_token_accuracy",)
    """What forward returns after (loss sum, count): sums that the loop divides by the count."""

    def logits(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits (N, V) in fp32 at the N positions with a target, the targets (N,), the mask
        (B, T-1) of those positions)."""
        extra = {"packed_segments": batch.segments} if batch.segments is not None else {}
        hidden = self.body(
            input_ids=batch.input_ids, position_ids=batch.position_ids,
            attention_mask=batch.attention_mask, use_cache=False, **extra,
        ).last_hidden_state  # (B, T, H)
        targets = batch.labels[:, 1:]  # position t predicts token t+1
        keep = targets != IGNORE_INDEX  # (B, T-1)
        logits = self.head(hidden[:, :-1][keep])  # (N, V): only the N positions with loss
        if self.logit_scale:
            logits = logits * self.logit_scale
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits.float(), targets[keep], keep

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, chosen, keep = self.logits(batch)
        loss_sum = F.cross_entropy(logits, chosen, reduction="sum")
        correct = (logits.argmax(-1) == chosen).sum()
        return loss_sum, keep.sum(), correct
