"""Continuous batching: one running decode batch per base model; rows join and leave at any step.

The batch keeps one KV cache (transformers' `DynamicCache`: per layer, keys and values of shape
(B, kv_heads, T, head_dim)) with every row's tokens right-aligned. Row r's real tokens fill the
last L_r columns; the columns before them are padding that the attention mask hides:

    cache columns      0 1 2 3 4 5        T = 6
    row 0 (L=6)        a a a a a a
    row 1 (L=3)        . . . b b b
    joining row c      its prompt (4 tokens) is prefilled apart, then left-padded to T:
    row 2 (L=4)        . . c c c c

A row that ends is dropped from the cache at once (`index_select` on the batch axis), and the
columns that have become padding for every row left are cut off the left edge, so the cache is
always as small as its longest live row. Each step appends one column for every row, at its own
position (L_r), so a row's tokens do not depend on who else is in the batch (up to float noise).

Rows for different LoRA adapters of the same base share the batch: each forward pass names every
row's adapter (PEFT's `adapter_names`, "__base__" for the base model itself).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import torch

from tunesmith.generation import Sampling, Step, pick_token

log = logging.getLogger(__name__)

BASE = "__base__"
"""PEFT's adapter name for "no adapter" in a mixed batch."""


@dataclass
class Row:
    """One choice of one request, queued for the engine thread."""

    key: str
    """Which loaded model runs it (a model spec or adapter folder)."""
    prompt: list[int]
    sampling: Sampling
    deliver: object
    """Called (from the engine thread) with each Step, or with an Exception."""
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass
class Live:
    """A row in the running batch."""

    row: Row
    adapter: str
    """PEFT adapter name, or BASE."""
    generator: torch.Generator
    length: int = 0
    """Real tokens of this row in the cache (prompt + generated, the pending token excluded)."""
    produced: int = 0
    active: bool = True
    reserved: int = field(init=False)
    """Most tokens this row can ever hold: prompt + max_new_tokens."""

    def __post_init__(self) -> None:
        self.reserved = len(self.row.prompt) + self.row.sampling.max_new_tokens


class DecodeBatch:
    """The running rows of one base model, decoded together one token per `step`.

    Args:
        model: the base model, or the PeftModel holding its adapters (the engine replaces
            `model` when it first wraps the base in a PeftModel).
        stop: token ids that end an answer.
        pad_id: id written in padding positions (never attended to).
        fail: called as `fail(row, exception)` for a row's own failure.
    """

    def __init__(self, model, stop: list[int], pad_id: int, fail) -> None:
        self.model, self.stops, self.pad_id, self.fail = model, set(stop), pad_id, fail
        self.rows: list[Live] = []
        self.cache = None
        self.width = 0  # cache columns (T)
        self.logits: torch.Tensor | None = None  # (B, vocab) float: each row's next token

    def __len__(self) -> int:
        return len(self.rows)

    def adapters(self) -> set[str]:
        return {live.adapter for live in self.rows}

    # ---- joining --------------------------------------------------------------------------

    @torch.inference_mode()
    def join(self, rows: list[Row], adapters: list[str]) -> None:
        """Prefill new rows (together; each alone when the shared pass fails, so a bad prompt
        fails only its own row) and add them to the batch. Their first token comes at the next
        `step`."""
        joining = []
        for row, adapter in zip(rows, adapters):
            try:
                joining.append(Live(row, adapter, row.sampling.generator()))
            except Exception as e:  # noqa: BLE001 - this row's failure (its seed)
                self.fail(row, e)
        if not joining:
            return
        try:
            self._merge(joining, *self._prefill(joining))
        except Exception as e:  # noqa: BLE001 - whose fault it is is found out below
            if len(joining) == 1:
                self.fail(joining[0].row, e)
                return
            log.warning("a prefill of %d rows failed; retrying each alone", len(joining))
            for live in joining:
                try:
                    self._merge([live], *self._prefill([live]))
                except Exception as e:  # noqa: BLE001 - delivered to its own row
                    self.fail(live.row, e)

    def _prefill(self, joining: list[Live]):
        device = next(self.model.parameters()).device
        prompts = [live.row.prompt for live in joining]
        width = max(map(len, prompts))
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for r, p in enumerate(prompts):
            ids[r, width - len(p):] = torch.tensor(p)
            mask[r, width - len(p):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids.to(device), attention_mask=mask.to(device),
                         position_ids=pos.to(device), use_cache=True, logits_to_keep=1,
                         **self._adapter_kwargs(joining))
        return out.cache, width, out.logits[:, -1].float()

    def _merge(self, joining: list[Live], cache, width: int, logits: torch.Tensor) -> None:
        from transformers.cache_utils import DynamicLayer

        if any(type(layer) is not DynamicLayer for layer in cache.layers):
            raise TypeError("continuous batching needs a model whose cache is plain full "
                            "attention (no sliding window); serve it with --engine static.")
        for live in joining:
            live.length = len(live.row.prompt)
        if self.cache is None or not self.rows:
            self.cache, self.width, self.logits = cache, width, logits
            self.rows = joining
            return
        total = max(self.width, width)
        for mine, theirs in zip(self.cache.layers, cache.layers):
            mine.keys = torch.cat([_left_pad(mine.keys, total), _left_pad(theirs.keys, total)])
            mine.values = torch.cat([_left_pad(mine.values, total),
                                     _left_pad(theirs.values, total)])
        self.width = total
        self.logits = torch.cat([self.logits, logits])
        self.rows = self.rows + joining

    # ---- decoding -------------------------------------------------------------------------

    @torch.inference_mode()
    def step(self) -> None:
        """Give every row its next token, drop the rows that ended, and run one forward pass
        for the others. A failure of the shared pass propagates (the engine fails the batch)."""
        tokens = self._pick_and_deliver()
        keep = [i for i, live in enumerate(self.rows) if live.active]
        if len(keep) < len(self.rows):
            self._keep(keep)
            tokens = [tokens[i] for i in keep]
        if not self.rows:
            self.cache, self.logits, self.width = None, None, 0
            return
        device = self.logits.device
        lengths = torch.tensor([live.length for live in self.rows])
        columns = torch.arange(self.width + 1)
        # Row r's real tokens are its last L_r columns, and the new token goes in column T.
        mask = (columns >= (self.width - lengths).unsqueeze(1)).long()
        out = self.model(input_ids=torch.tensor(tokens).unsqueeze(1).to(device),
                         attention_mask=mask.to(device),
                         position_ids=lengths.unsqueeze(1).to(device), cache=self.cache,
                         use_cache=True, **self._adapter_kwargs(self.rows))
        self.cache, self.width = out.cache, self.width + 1
        for live in self.rows:
            live.length += 1
        self.logits = out.logits[:, -1].float()

    def _pick_and_deliver(self) -> list[int]:
        """Each row's token from the logits in hand (greedy on the device; sampled rows on the
        CPU with their own generator), delivered as a `Step`."""
        logits = self.logits
        logp = logits.log_softmax(-1)
        chosen = logits.argmax(-1).tolist()  # greedy rows; sampled rows pick theirs below
        sampled = [i for i, live in enumerate(self.rows) if live.row.sampling.temperature > 0]
        on_cpu = dict(zip(sampled, logits[sampled].cpu())) if sampled else {}
        k = max(live.row.sampling.top_logprobs for live in self.rows)
        top = logp.topk(min(k, logp.shape[-1])) if k else None
        top_values = top.values.tolist() if top is not None else None
        top_ids = top.indices.tolist() if top is not None else None
        for i in sampled:
            live = self.rows[i]
            try:
                chosen[i] = pick_token(on_cpu[i], live.row.sampling, live.generator)
            except Exception as e:  # noqa: BLE001 - this row's failure, not the batch's
                live.active = False
                self.fail(live.row, e)
        chosen_logp = logp.gather(1, torch.tensor(chosen, device=logp.device).unsqueeze(1))
        chosen_logp = chosen_logp.squeeze(1).tolist()
        now = time.monotonic()
        for i, live in enumerate(self.rows):
            if not live.active:
                continue
            if live.row.cancelled.is_set():  # the client left, or a stop string was reached
                live.active = False
                continue
            s = live.row.sampling
            try:
                token = chosen[i]
                live.produced += 1
                alternatives = (list(zip(top_ids[i][:s.top_logprobs],
                                         top_values[i][:s.top_logprobs]))
                                if s.top_logprobs else [])
                eos = token in self.stops
                last = (eos or live.produced >= s.max_new_tokens
                        or (s.deadline is not None and now >= s.deadline))
                live.row.deliver(Step(i, token, chosen_logp[i], alternatives, last, eos))
            except Exception as e:  # noqa: BLE001 - e.g. its client's event loop is gone
                live.active = False
                self.fail(live.row, e)
                continue
            live.active = not (last or live.row.cancelled.is_set())
        return chosen

    def _keep(self, keep: list[int]) -> None:
        """Drop every row not in `keep` from the cache, then the columns no row uses."""
        self.rows = [self.rows[i] for i in keep]
        if not self.rows:
            return
        index = torch.tensor(keep, device=self.logits.device)
        cut = self.width - max(live.length for live in self.rows)
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, cut:]
            layer.values = layer.values.index_select(0, index)[:, :, cut:]
        self.width -= cut
        self.logits = self.logits.index_select(0, index)

    def fail_all(self, e: Exception) -> None:
        """The shared pass failed: every row ends with `e`, and the cache is freed."""
        for live in self.rows:
            self.fail(live.row, e)
        self.rows, self.cache, self.logits, self.width = [], None, None, 0

    def _adapter_kwargs(self, rows: list[Live]) -> dict:
        from peft import PeftModel

        if not isinstance(self.model, PeftModel):
            return {}
        return {"adapter_names": [live.adapter for live in rows]}


def _left_pad(x: torch.Tensor, width: int) -> torch.Tensor:
    """(B, H, T, D) -> (B, H, width, D), zeros on the left (positions the mask hides)."""
    missing = width - x.shape[2]
    if missing == 0:
        return x
    return torch.cat([x.new_zeros(x.shape[0], x.shape[1], missing, x.shape[3]), x], dim=2)

