"""Batched greedy generation, shared by evaluation and the service.

Prompts are left-padded into one batch so every row's next token sits in the same column;
generation stops per row at the end-of-turn (EOS) token.
"""

from __future__ import annotations

import time
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
    results: list[Generated | None] = [None] * len(prompts)
    if seed is not None:
        torch.manual_seed(seed)
    lengths = [len(p) for p in prompts]
    order = sorted(range(len(prompts)), key=lengths.__getitem__)  # batches of like length
    for first in range(0, len(prompts), batch_size):
        batch = order[first:first + batch_size]
        enc, ids, mask = left_pad(tokenizer, [prompts[i] for i in batch])
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
            results[batch[r]] = Generated(
                tokenizer.decode(answer, skip_special_tokens=True), len(e),
                len(answer) + (cut is not None), "stop" if cut is not None else "length")
    return results


@dataclass
class Sampling:
    """How one row of a batch picks its tokens (the chat completion parameters)."""

    max_new_tokens: int = 256
    temperature: float = 1.0
    """0 is greedy."""
    top_p: float = 1.0
    seed: int | None = None
    top_logprobs: int = 0
    """Alternatives to report at each position (0-20), besides the chosen token."""
    deadline: float | None = None
    """`time.monotonic()` after which the row ends at its next token (a time budget)."""

    def generator(self) -> torch.Generator:
        """The row's own random stream: seeded (any integer, taken modulo 2**64), or fresh."""
        g = torch.Generator()
        g.manual_seed(self.seed % 2**64 if self.seed is not None else torch.seed())
        return g


@dataclass
class Step:
    """One generated token of one row, as `decode_rows` reports it."""

    row: int
    token: int
    logprob: float
    """log p(token) under the model (before temperature and top-p)."""
    top: list[tuple[int, float]]
    """The `top_logprobs` most likely tokens and their log-probabilities."""
    last: bool
    """True when the row ended with this token (end-of-turn, or max_new_tokens reached)."""
    eos: bool = False
    """True when this token is an end-of-turn token (the answer is complete, not cut off)."""


@torch.inference_mode()
def decode_rows(model, prompts: list[list[int]], sampling: list[Sampling], stop: list[int],
                pad_id: int, on_step, on_error=None) -> None:
    """Generate for a batch of token-id prompts, each row with its own sampling, calling
    `on_step(Step)` for every new token as soon as it exists (streaming).

    `on_step` returns True to end its row early (a stop string was reached, or the client left).
    Rows are left-padded; a finished row keeps a slot in the batch but its tokens are ignored.

    Rows are isolated: an exception in one row's own work (its seed, its sampling, its
    `on_step`) ends that row with `on_error(row, exception)` and the others go on. Without
    `on_error` it propagates. The batched forward passes are shared: their failures propagate.
    """
    device = next(model.parameters()).device
    b, width = len(prompts), max(map(len, prompts))
    ids = torch.full((b, width), pad_id, dtype=torch.long)
    mask = torch.zeros((b, width), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, width - len(p):] = torch.tensor(p)
        mask[r, width - len(p):] = 1
    active = [True] * b
    produced = [0] * b

    def fail(r: int, e: Exception) -> None:
        if on_error is None:
            raise e
        active[r] = False
        on_error(r, e)

    generators: list[torch.Generator | None] = []
    for r, s in enumerate(sampling):
        try:
            generators.append(s.generator())
        except Exception as e:  # noqa: BLE001 - this row's failure, not the batch's
            generators.append(None)
            fail(r, e)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                position_ids=pos.to(device), use_cache=True, logits_to_keep=1)
    cache, next_pos = out.cache, pos[:, -1:] + 1
    logits = out.logits[:, -1].float().cpu()
    stops = set(stop)
    while any(active):
        logp = logits.log_softmax(-1)
        chosen = torch.full((b, 1), pad_id, dtype=torch.long)
        now = time.monotonic()
        for r in range(b):
            if not active[r]:
                continue
            s = sampling[r]
            try:
                token = pick_token(logits[r], s, generators[r])
                produced[r] += 1
                top = []
                if s.top_logprobs:
                    values, indices = logp[r].topk(min(s.top_logprobs, logp.shape[-1]))
                    top = list(zip(indices.tolist(), values.tolist()))
                eos = token in stops
                last = (eos or produced[r] >= s.max_new_tokens
                        or (s.deadline is not None and now >= s.deadline))
                ended = on_step(Step(r, token, logp[r, token].item(), top, last, eos))
            except Exception as e:  # noqa: BLE001 - this row's failure, not the batch's
                fail(r, e)
                continue
            active[r] = not (last or ended)
            chosen[r, 0] = token
        if not any(active):
            break
        mask = torch.cat([mask, torch.ones((b, 1), dtype=torch.long)], dim=1)
        out = model(input_ids=chosen.to(device), attention_mask=mask.to(device),
                    position_ids=next_pos.to(device), cache=cache, use_cache=True)
        cache, next_pos = out.cache, next_pos + 1
        logits = out.logits[:, -1].float().cpu()


def pick_token(logits: torch.Tensor, s: Sampling, generator: torch.Generator) -> int:
    """One row's next token from its (vocab,) logits: greedy at temperature 0, else drawn
    (within top_p) with the row's own generator."""
    if s.temperature <= 0:
        return int(logits.argmax())
    probs = (logits.double() / s.temperature).softmax(-1)
    if not bool(torch.isfinite(probs).all()):  # a temperature so small it is greedy
        return int(logits.argmax())
    if s.top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < s.top_p  # the smallest set reaching top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
    return int(torch.multinomial(probs, 1, generator=generator))
