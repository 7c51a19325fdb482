"""The training loss, computed only where it is needed.

A classification answer is ~3 tokens of a ~80-token example, and the output layer maps each
position to 49,152 vocabulary logits. `CausalLMLoss` runs the transformer body on every token
but the output layer only on the positions that carry loss, which removes most of the output
layer's cost and all of its (tokens x vocabulary) activation memory. It is an `nn.Module` so
DistributedDataParallel can wrap it (DDP only syncs gradients of work done in its forward).

Long answers (chat, NER) over large vocabularies still make (answer tokens x vocabulary) logits:
4,096 answer tokens x 152k words is 2.5 GB in fp32, plus its bf16 copy and its gradient. Past
`CHUNK_ELEMENTS` the output layer and the loss run chunk by chunk under activation
checkpointing: a chunk's logits exist only while that chunk is computed (and recomputed in the
backward pass), so peak memory is one chunk's, at the price of the output layer's forward pass
run twice for those positions. Loss and gradients are the same (tested on a 152k-vocabulary
model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from tunesmith.data.packing import Batch
from tunesmith.data.render import IGNORE_INDEX
from tunesmith.modeling import hf_model
from tunesmith.training.attention import use_packed_attention

CHUNK_ELEMENTS = 2**26
"""Logit elements (answer positions x vocabulary) above which the output layer runs in chunks of
about this size: 256 MB of fp32 logits."""


class CausalLMLoss(nn.Module):
    """Forward returns (sum of token losses, loss tokens, correctly predicted loss tokens)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
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

    def token_logps(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log-probability of each target token (N,) in fp32, whether the model's top word was
        that token (N,), the mask (B, T-1) of the N positions with a target)."""
        hidden = self.body(
            input_ids=batch.input_ids, position_ids=batch.position_ids,
            attention_mask=batch.attention_mask, use_cache=False, **batch.model_inputs(),
        ).last_hidden_state  # (B, T, H)
        targets = batch.labels[:, 1:]  # position t predicts token t+1
        keep = targets != IGNORE_INDEX  # (B, T-1)
        h, t = hidden[:, :-1][keep], targets[keep]  # only the N positions with loss
        rows = max(1, CHUNK_ELEMENTS // self.head.weight.shape[0])
        if h.shape[0] <= rows:
            logps, correct = self._head(h, t)
        else:
            parts = [checkpoint(self._head, hc, tc, use_reentrant=False)
                     for hc, tc in zip(h.split(rows), t.split(rows))]
            logps, correct = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        return logps, correct, keep

    def _head(self, hidden: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = self.head(hidden)  # (n, V)
        if self.logit_scale:
            logits = logits * self.logit_scale
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        logits = logits.float()
        return (-F.cross_entropy(logits, targets, reduction="none"),
                logits.argmax(-1) == targets)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logps, correct, keep = self.token_logps(batch)
        return -logps.sum(), keep.sum(), correct.sum()
