"""How fast a model reads and writes tokens here: the basis of self-hosted cost per request.

Pricing self-hosted requests from each approach's measured latency made the price move with
whatever else the machine was doing (a busy machine priced the fine-tuned model, which sends the
same prompt as zero-shot, at 8x zero-shot). Requests are priced from their tokens instead:

    seconds per request = prompt tokens / prefill tokens/s + answer tokens / decode tokens/s

with both rates measured once per model and run by a short fixed probe (a batch of prompts
read in one pass; then decoding one token per row per step with the KV cache), the median of 3.
Latency is still measured and shown beside the price.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import torch

from tunesmith.atomic import atomic_open
from tunesmith.errors import UnusableInputError
from tunesmith.pricing import Machine


@dataclass(frozen=True)
class Throughput:
    prefill_tokens_per_s: float
    """Prompt tokens read per second (batched)."""
    decode_tokens_per_s: float
    """Answer tokens written per second (batched, one per row per step)."""
    batch: int
    prompt_tokens: int
    decode_steps: int

    def seconds(self, prompt_tokens: float, answer_tokens: float, *, scored: bool = False) -> float:
        """Seconds one request takes at these rates. `scored`: the answer's tokens are read in
        passes like the prompt's (label scoring), not written one step at a time."""
        answer_rate = self.prefill_tokens_per_s if scored else self.decode_tokens_per_s
        return prompt_tokens / self.prefill_tokens_per_s + answer_tokens / answer_rate

    def to_dict(self) -> dict:
        return asdict(self)


@torch.inference_mode()
def measure(model, *, batch: int = 16, prompt_tokens: int = 128, decode_steps: int = 16,
            repeats: int = 3) -> Throughput:
    """The model's prefill and decode rates on this machine, the median of `repeats` rounds
    (after one warm-up round, which pays one-off kernel set-up)."""
    device = next(model.parameters()).device
    vocab = model.get_input_embeddings().weight.shape[0]
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch, prompt_tokens), generator=generator).to(device)
    prefill, decode = [], []
    for round_ in range(repeats + 1):
        start = time.perf_counter()
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        _sync(device)
        read = time.perf_counter() - start
        cache, token = out.cache, out.logits[:, -1].argmax(-1, keepdim=True)
        start = time.perf_counter()
        for step in range(decode_steps):
            position = torch.full((batch, 1), prompt_tokens + step, device=device)
            out = model(input_ids=token, cache=cache, position_ids=position, use_cache=True)
            cache, token = out.cache, out.logits[:, -1].argmax(-1, keepdim=True)
        _sync(device)
        written = time.perf_counter() - start
        if round_:
            prefill.append(batch * prompt_tokens / read)
            decode.append(batch * decode_steps / written)
    return Throughput(statistics.median(prefill), statistics.median(decode), batch,
                      prompt_tokens, decode_steps)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def this_machine() -> Machine:
    """What measurements here run on: the CUDA device when there is one, else the CPU cores."""
    if torch.cuda.is_available():
        return Machine("gpu", torch.cuda.get_device_name(0))
    return Machine("cpu", "cpu", os.cpu_count() or 1)


CAPACITY_FORMAT = "tunesmith-capacity/1"


def save_capacity(path: Path, rates: Throughput, model: str, machine: str,
                  here: Machine) -> None:
    """A capacity file: `rates` measured here for `model`, to price machine type `machine`
    elsewhere (`compare`/`cost --machine NAME --capacity FILE`)."""
    doc = {"format": CAPACITY_FORMAT, "machine": machine, "model": model,
           "measured_on": here.describe(), "date": date.today().isoformat(), **rates.to_dict()}
    with atomic_open(path) as f:
        f.write(json.dumps(doc, indent=1) + "\n")


def load_capacity(path: str | Path, machine: str, model: str) -> Throughput:
    """The rates in a capacity file, checked to be for `machine` and `model`.

    Raises:
        UnusableInputError: unreadable, not a capacity file, or for another machine or model.
    """
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UnusableInputError(path, f"cannot read the capacity file: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != CAPACITY_FORMAT:
        raise UnusableInputError(path, "not a capacity file (write one with bench/capacity.py "
                                 "on the machine it prices).")
    if doc.get("machine") != machine:
        raise UnusableInputError(path, f"measured for machine {doc.get('machine')!r}, not "
                                 f"--machine {machine}.")
    if Path(str(doc.get("model"))).name != Path(model).name:
        raise UnusableInputError(path, f"measured for model {doc.get('model')!r}, not {model!r} "
                                 "(a capacity holds for one model's size and architecture).")
    try:
        rates = Throughput(float(doc["prefill_tokens_per_s"]), float(doc["decode_tokens_per_s"]),
                           int(doc["batch"]), int(doc["prompt_tokens"]), int(doc["decode_steps"]))
    except (KeyError, TypeError, ValueError) as e:
        raise UnusableInputError(path, f"field {e} missing or not a number.") from e
    if not (rates.prefill_tokens_per_s > 0 and rates.decode_tokens_per_s > 0):
        raise UnusableInputError(path, "rates must be positive tokens/s.")
    return rates
