"""Attention for packed rows: each example attends only to itself, through the fast kernel.

transformers builds a block-diagonal mask from restarting position ids, but scaled-dot-product
attention with an explicit mask runs PyTorch's slow "math" path on CPU. Cutting each row at the
example boundaries and calling the causal kernel once per example (no mask) computes the same
thing (up to float rounding) and runs 3x faster on this CPU (forward + backward of one SmolLM2
layer on 8 packed examples: 16 ms -> 5 ms).

    row:      a a a a a c c c . .          segments: (0, 5) (5, 8) (8, 10)
    attention per segment, causal:  [a a a a a] [c c c] [. .]

On a GPU that per-example loop is thousands of tiny kernel launches per step, so there one
kernel call per layer covers every packed example ("varlen" attention), chosen by device:

    segments   the loop above: CPU (fastest there, measured), and the reference
    flash      `flash_attn_varlen_func` (package `flash-attn`) on CUDA when installed: examples
               concatenated, boundaries given as cumulative lengths
    flex       PyTorch's FlexAttention with a document mask (q and k in the same example, k <= q),
               compiled, on CUDA without flash-attn; eager (slow, exact) elsewhere in tests

`TUNESMITH_PACKED_ATTENTION=segments|flash|flex` overrides the choice. A test proves equal loss
and gradients of the three on CPU (flash where installed).
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch
import torch.nn.functional as F

PACKED_ATTENTION = "tunesmith_packed"
KERNELS = ("segments", "flash", "flex")


def kernel_for(device: torch.device) -> str:
    """The packed-attention kernel for `device` (see the module docstring)."""
    chosen = os.environ.get("TUNESMITH_PACKED_ATTENTION")
    if chosen in KERNELS:
        return chosen
    if device.type != "cuda":
        return "segments"
    return "flash" if importlib.util.find_spec("flash_attn") is not None else "flex"


def packed_attention(module, query, key, value, attention_mask, dropout: float = 0.0,
                     scaling: float | None = None, packed_segments=None, packed_prefix=None,
                     **kwargs):
    """transformers attention function: (B, H, T, D) query, (B, KV, T, D) key/value.

    With `packed_segments` (per row, the (start, end) of each example) it runs causal attention
    segment by segment; otherwise it is plain SDPA with the mask transformers built.
    `packed_prefix` (per row, the length of a shared prefix, the row's first segment): every
    other segment attends to the prefix and, causally, to itself (the segments kernel only).
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if packed_segments is None or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    kernel = kernel_for(query.device)
    if packed_prefix and kernel != "segments":
        raise ValueError(f"a shared prefix needs the segments kernel, not {kernel}")
    if kernel == "flash":
        return _flash_varlen(query, key, value, packed_segments, dropout, scaling)
    if kernel == "flex":
        return _flex(query, key, value, packed_segments, scaling)
    dtype = query.dtype
    on_cpu = query.device.type == "cpu"
    gqa = query.shape[1] != key.shape[1]
    rows = []
    with torch.autocast(query.device.type, enabled=not on_cpu):
        if on_cpu:  # the CPU flash kernel is ~2x faster in fp32 than in bf16
            query, key, value = query.float(), key.float(), value.float()
        # unbind/split rather than slicing: their backward is one stack/cat, where the backward
        # of every slice would zero-fill a gradient the size of the whole row (measured: 5% of
        # a full fine-tuning step went to those fills).
        width = query.shape[2]
        for b, (q, k, v) in enumerate(zip(query.unbind(0), key.unbind(0), value.unbind(0))):
            sizes = _sizes(packed_segments[b], width)
            pieces = list(zip(q.split(sizes, 1), k.split(sizes, 1), v.split(sizes, 1)))
            parts = [F.scaled_dot_product_attention(
                qs[None], ks[None], vs[None], dropout_p=dropout, scale=scaling, is_causal=True,
                enable_gqa=gqa) for qs, ks, vs in pieces[:1]]
            shared = packed_prefix[b] if packed_prefix else 0
            if shared:  # the first piece is the prefix: the others see it, then themselves
                # imported here: torch.nn.attention.bias pulls in torch._dynamo (1 s at start-up)
                from torch.nn.attention.bias import causal_lower_right

                _, k0, v0 = pieces[0]
                parts += [F.scaled_dot_product_attention(
                    qs[None], torch.cat([k0, ks], 1)[None], torch.cat([v0, vs], 1)[None],
                    attn_mask=causal_lower_right(qs.shape[1], shared + ks.shape[1]),
                    dropout_p=dropout, scale=scaling, enable_gqa=gqa)
                    for qs, ks, vs in pieces[1:]]
            else:
                parts += [F.scaled_dot_product_attention(
                    qs[None], ks[None], vs[None], dropout_p=dropout, scale=scaling,
                    is_causal=True, enable_gqa=gqa) for qs, ks, vs in pieces[1:]]
            rows.append(torch.cat(parts, dim=2))
    out = torch.cat(rows, dim=0).to(dtype)  # (B, H, T, D)
    return out.transpose(1, 2).contiguous(), None


def _flash_varlen(query, key, value, packed_segments, dropout: float, scaling: float | None):
    """All rows' examples as one sequence of sequences: one `flash_attn_varlen_func` call."""
    from flash_attn import flash_attn_varlen_func

    batch, heads, width, dim = query.shape
    starts = [b * width + start for b in range(batch)
              for start in _starts(packed_segments[b], width)] + [batch * width]
    cu = torch.tensor(starts, dtype=torch.int32, device=query.device)
    longest = int((cu[1:] - cu[:-1]).max())
    # (B, H, T, D) -> (B*T, H, D); flash-attn handles grouped key/value heads itself
    q, k, v = (x.transpose(1, 2).reshape(batch * width, x.shape[1], dim)
               for x in (query, key, value))
    out = flash_attn_varlen_func(q, k, v, cu, cu, longest, longest, dropout_p=dropout,
                                 softmax_scale=scaling, causal=True)
    return out.reshape(batch, width, heads, dim), None


def _flex(query, key, value, packed_segments, scaling: float | None):
    """One FlexAttention call with a block mask: causal within each example."""
    from torch.nn.attention.flex_attention import flex_attention

    batch, _, width, _ = query.shape
    mask = _document_mask(tuple(tuple(map(tuple, row)) for row in packed_segments), batch, width,
                          str(query.device))
    run = _compiled_flex() if query.device.type == "cuda" else flex_attention
    out = run(query, key, value, block_mask=mask, scale=scaling,
              enable_gqa=query.shape[1] != key.shape[1])
    return out.transpose(1, 2).contiguous(), None


@functools.lru_cache(maxsize=1)
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


@functools.lru_cache(maxsize=8)
def _document_mask(segments: tuple, batch: int, width: int, device: str):
    """The block mask of a packed batch, built once per batch (every layer reuses it)."""
    from torch.nn.attention.flex_attention import create_block_mask

    doc = torch.zeros(batch, width, dtype=torch.int32)
    for b, row in enumerate(segments):
        pieces = zip(_starts(list(row), width), _sizes(list(row), width))
        for k, (start, size) in enumerate(pieces):
            doc[b, start:start + size] = k
    doc = doc.to(device)

    def same_example_causal(b, h, q, kv):
        return (doc[b, q] == doc[b, kv]) & (kv <= q)

    return create_block_mask(same_example_causal, batch, None, width, width, device=device)


def _starts(segments: list[tuple[int, int]], width: int) -> list[int]:
    """Where each piece of `_sizes` starts."""
    starts, at = [], 0
    for size in _sizes(segments, width):
        starts.append(at)
        at += size
    return starts


def _sizes(segments: list[tuple[int, int]], width: int) -> list[int]:
    """Lengths of consecutive pieces covering [0, width): the examples, and any gap or padding
    between or after them as pieces of their own (causal attention within a padding piece is
    harmless: no loss is taken there)."""
    sizes, at = [], 0
    for start, end in segments:
        if start > at:
            sizes.append(start - at)
        sizes.append(end - start)
        at = end
    if at < width:
        sizes.append(width - at)
    return sizes


def use_packed_attention(model: torch.nn.Module) -> None:
    """Route `model`'s attention through `packed_attention` (a transformers model or PEFT wrapper)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(PACKED_ATTENTION, packed_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(PACKED_ATTENTION, sdpa_mask)
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "_attn_implementation"):
            config._attn_implementation = PACKED_ATTENTION
