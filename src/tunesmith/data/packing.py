"""Packing examples into forward passes, and turning them into the tensors a pass takes.

Packed (the default), padding-free: a step's examples are placed, best-fit decreasing, into
forward passes of at most `max_tokens` tokens, and each pass is ONE row, its examples end to end
(what flash-attention's "varlen" kernels and TRL's `padding_free` do). Three examples of 5, 3 and
4 tokens, budget 16:

    row:           a a a a a b b b b c c c          no padding at all
    position_ids   0 1 2 3 4 0 1 2 3 0 1 2          restart at each example
    segments       (0, 5) (5, 9) (9, 12)

Attention stays inside each example: `training.attention` runs the causal kernel segment by
segment. (Without it, transformers builds the same block-diagonal mask from the restarting
position ids.) Fixed-length rows of `max_seq_len` would pad every row of a pass to the longest
one: eight SST-2 examples (~480 tokens) that overflow a 512-token row into a second, short row
were padded to 2 x 512 and cost two rows' time.

    block-diagonal causal attention (1 = may attend)   a a a a a b b b b
                                                   a   1
                                                   a   1 1
                                                   ...
                                                   b   0 0 0 0 0 1
                                                   b   0 0 0 0 0 1 1

That makes the packed loss equal to the unpacked one (tests/data/test_packing.py checks it).
Unpacked (`--no-pack`): one example per row, right-padded, with a 1/0 attention mask.

Shared prefix: when a step's examples all start with the same tokens that are not learned (a
system prompt and the template around it: 47 of the 77 tokens of a demo example), a row holds
that prefix once and each example's rest after it, positions continuing from the prefix:

    examples       P P P a a      P P P b b b
    row            P P P a a b b b                    prefix (0, 3), segments (3, 5) (5, 8)
    position_ids   0 1 2 3 4 3 4 5
    attention      P causal; each example: the prefix and itself, causally

Every example sees exactly what it would see alone, so loss and gradients are the unshared
ones (tests/data/test_packing.py), for fewer tokens through the model: 2.1x fewer on the demo's
data. Only the token after the prefix must not be a target (its own predecessor is the prefix's
last token alone in the first example of a row).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np
import torch

from tunesmith.data.render import IGNORE_INDEX, Tokenized


def pack(lengths: list[int], capacity: int) -> list[list[int]]:
    """Best-fit decreasing bin packing: each index goes, longest first, into the fullest row that
    still has room. Returns rows of indices into `lengths`.

    Example:
        >>> pack([5, 3, 4], capacity=8)
        [[0, 1], [2]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, row index), kept sorted
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"an item of {n} tokens cannot fit rows of {capacity}")
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            room, row = free.pop(k)
            rows[row].append(i)
            bisect.insort(free, (room - n, row))
        else:
            rows.append([i])
            bisect.insort(free, (capacity - n, len(rows) - 1))
    return rows


@dataclass
class Batch:
    """Tensors for one forward pass, shape (rows, row length)."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    """None for packed rows (the mask comes from position ids); 1/0 padding mask otherwise."""
    n_tokens: int
    """Real (non-padding) tokens."""
    segments: list[list[tuple[int, int]]] | None = None
    """Packed rows: each row's (start, end) per example, trailing padding as a last segment."""
    prefix: list[int] | None = None
    """Packed rows with a shared prefix: each row's prefix length (its first segment, which
    every other segment of the row attends to); None: no row shares one."""

    @property
    def n_loss_tokens(self) -> int:
        # labels are shifted by one inside the loss: position 0 never is a target
        return int((self.labels[:, 1:] != IGNORE_INDEX).sum())

    @property
    def n_targets(self) -> int:
        """What the step's loss is averaged over: answer tokens."""
        return self.n_loss_tokens

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.input_ids.to(device), self.labels.to(device),
                     self.position_ids.to(device),
                     None if self.attention_mask is None else self.attention_mask.to(device),
                     self.n_tokens, self.segments, self.prefix)

    def model_inputs(self) -> dict:
        """What the packed attention reads beside the tensors (`training/attention.py`)."""
        if self.segments is None:
            return {}
        return {"packed_segments": self.segments,
                **({"packed_prefix": self.prefix} if self.prefix else {})}


def collate_packed(items: list[Tokenized], rows: list[list[int]], pad_id: int) -> Batch:
    """Concatenate each row's examples; position ids restart per example; padding at the end."""
    width = max(sum(len(items[i].input_ids) for i in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    segments = []
    for r, row in enumerate(rows):
        at = 0
        spans = []
        for i in row:
            n = len(items[i].input_ids)
            ids[r, at:at + n] = torch.tensor(items[i].input_ids)
            labels[r, at:at + n] = torch.tensor(items[i].labels)
            pos[r, at:at + n] = torch.arange(n)
            spans.append((at, at + n))
            at += n
        if at < width:
            spans.append((at, width))
        segments.append(spans)
    return Batch(ids, labels, pos, None, sum(len(items[i].input_ids) for row in rows for i in row),
                 segments)


def collate_padded(items: list[Tokenized], pad_id: int) -> Batch:
    """One example per row, right-padded to the longest, with a 1/0 attention mask."""
    width = max(len(x.input_ids) for x in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for r, x in enumerate(items):
        n = len(x.input_ids)
        ids[r, :n] = torch.tensor(x.input_ids)
        labels[r, :n] = torch.tensor(x.labels)
        mask[r, :n] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return Batch(ids, labels, pos, mask, int(mask.sum()))


MIN_SHARED_PREFIX = 16
"""Tokens a prefix must have to be shared (a shorter one saves less than its bookkeeping)."""


def shared_prefix(items: list[Tokenized]) -> int:
    """The length of the prefix every item starts with that can be shared: the longest common
    prefix of their tokens, cut so that it and the token after it are no target; 0 when that is
    under MIN_SHARED_PREFIX or there are fewer than two items."""
    if len(items) < 2:
        return 0
    ids = [np.asarray(x.input_ids) for x in items]
    k = min(len(x) for x in ids) - 1  # every item keeps at least one token of its own
    first = ids[0][:k]
    for x in ids[1:]:
        differ = np.flatnonzero(x[:k] != first[:k])
        if differ.size:
            k = int(differ[0])
    for x in items:
        targets = np.flatnonzero(np.asarray(x.labels) != IGNORE_INDEX)
        if targets.size:
            k = min(k, int(targets[0]) - 1)
    return k if k >= MIN_SHARED_PREFIX else 0


def collate_shared(items: list[Tokenized], rows: list[list[int]], prefix: int,
                   pad_id: int) -> Batch:
    """Packed rows that hold the items' common `prefix` once, then each item's rest."""
    width = max(prefix + sum(len(items[i].input_ids) - prefix for i in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    head = torch.tensor(np.asarray(items[rows[0][0]].input_ids[:prefix]), dtype=torch.long)
    segments = []
    for r, row in enumerate(rows):
        ids[r, :prefix] = head
        pos[r, :prefix] = torch.arange(prefix)
        spans, at = [(0, prefix)], prefix
        for i in row:
            n = len(items[i].input_ids)
            ids[r, at:at + n - prefix] = torch.tensor(items[i].input_ids[prefix:])
            labels[r, at:at + n - prefix] = torch.tensor(items[i].labels[prefix:])
            pos[r, at:at + n - prefix] = torch.arange(prefix, n)
            spans.append((at, at + n - prefix))
            at += n - prefix
        if at < width:
            spans.append((at, width))
        segments.append(spans)
    # n_tokens counts the examples' own tokens (OpenAI's trained tokens), the prefix each time
    return Batch(ids, labels, pos, None, sum(len(items[i].input_ids) for row in rows for i in row),
                 segments, [prefix] * len(rows))


def micro_batches(items: list[Tokenized], pack_rows: bool, max_tokens: int,
                  pad_id: int, share_prefix: bool = False) -> list[Batch]:
    """Split one optimizer step's examples into forward passes of at most `max_tokens` tokens
    (padding included; a single example longer than that still gets a pass of its own).
    `share_prefix`: packed rows hold the examples' common untrained prefix once."""
    prefix = shared_prefix(items) if pack_rows and share_prefix else 0
    if prefix:
        lengths = [len(x.input_ids) - prefix for x in items]
        groups = pack(lengths, max(max_tokens - prefix, max(lengths)))
        return [collate_shared([items[i] for i in g], [list(range(len(g)))], prefix, pad_id)
                for g in groups]
    if pack_rows:
        lengths = [len(x.input_ids) for x in items]
        groups = pack(lengths, max(max_tokens, max(lengths, default=0)))
        return [collate_packed([items[i] for i in g], [list(range(len(g)))], pad_id)
                for g in groups]
    out: list[Batch] = []
    current: list[Tokenized] = []
    width = 0
    for x in items:
        n = len(x.input_ids)
        if current and max(width, n) * (len(current) + 1) > max_tokens:
            out.append(collate_padded(current, pad_id))
            current, width = [], 0
        current.append(x)
        width = max(width, n)
    if current:
        out.append(collate_padded(current, pad_id))
    return out
