"""Batched greedy generation, shared by evaluation and the service.

Prompts are left-padded into one batch so every row's next token sits in the same column;
generation stops per row at the end-of-turn (EOS) token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Generated:
    text: str
    """The answer, special tokens removed."""
    prompt_tokens: int
    completion_tokens: int
    """Generated tokens, the end-of-turn token included when it was reached."""
    finish_reason: str
    """`stop` (end-of-turn or a stop string) or `length` (max_new_tokens reached)."""


def stop_ids(tokenizer, model=None) -> list[int]:
    """Token ids that end an answer: the tokenizer's EOS and the model's generation-config EOS."""
    ids = {tokenizer.eos_token_id}
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(eos) if isinstance(eos, list) else {eos}
    return sorted(i for i in ids if i is not None)


def left_pad(tokenizer, prompts: list[str]) -> tuple[list[list[int]], torch.Tensor, torch.Tensor]:
    """Tokenize prompts and left-pad them so every prompt ends at the same column.

    Returns:
        (token ids per prompt, ids (B, T), 1/0 attention mask (B, T)).
    """
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    enc = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    width = max(map(len, enc))
    ids = torch.full((len(enc), width), pad, dtype=torch.long)
    mask = torch.zeros((len(enc), width), dtype=torch.long)
    for r, e in enumerate(enc):
        ids[r, width - len(e):] = torch.tensor(e)
        mask[r, width - len(e):] = 1
    return enc, ids, mask


@torch.inference_mode()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 64,
             batch_size: int = 16, temperature: float = 0.0, top_p: float = 1.0,
             seed: int | None = None) -> list[Generated]:
    """Complete each rendered prompt (greedy when temperature is 0)."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    eos = stop_ids(tokenizer, model)
    results: list[Generated] = []
    if seed is not None:
        torch.manual_seed(seed)
    for first in range(0, len(prompts), batch_size):
        enc, ids, mask = left_pad(tokenizer, prompts[first:first + batch_size])
        width = ids.shape[1]
        sampling = temperature > 0
        out = model.generate(
            input_ids=ids.to(device), attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens, do_sample=sampling,
            temperature=temperature if sampling else None, top_p=top_p if sampling else None,
            top_k=None, eos_token_id=eos, pad_token_id=pad)
        for r, e in enumerate(enc):
            new = out[r, width:].tolist()
            cut = next((k for k, t in enumerate(new) if t in eos), None)
            answer = new if cut is None else new[:cut]
            results.append(Generated(
                tokenizer.decode(answer, skip_special_tokens=True), len(e),
                len(answer) + (cut is not None), "stop" if cut is not None else "length"))
    return results
