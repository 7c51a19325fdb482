"""Hidden-state features of each example's prompt, for the label-error probes.

The prompt is rendered as the model sees it at inference (its chat template, generation prompt
included); the features are the last prompt token's hidden state at half and at four fifths of
the depth, and the prompt's mean hidden state at half depth. On SST-2 (2,000 sentences, the
embedded 135M model) these probes reach 0.84 out-of-fold accuracy averaged, against 0.72 for
TF-IDF (measured with bench/audit_data.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tunesmith.data.examples import Example
from tunesmith.data.render import prompt_messages, render
from tunesmith.modeling import load_for_inference

BATCH_TOKENS = 4096
MAX_PROMPT_TOKENS = 512


def hidden_state_features(
    examples: list[Example], model_spec: str | None,
    progress: Callable[[str], None] = lambda message: None,
) -> list[np.ndarray]:
    import torch

    model, tokenizer = load_for_inference(model_spec)
    depth = model.config.num_hidden_layers
    half, late = max(1, round(depth / 2)), max(1, round(depth * 4 / 5))
    prompts = render(tokenizer, [prompt_messages(e) for e in examples], add_generation_prompt=True)
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"][-MAX_PROMPT_TOKENS:] or
           [tokenizer.eos_token_id] for p in prompts]
    width = model.config.hidden_size
    out = [np.zeros((len(examples), width), dtype=np.float32) for _ in range(3)]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    start = 0
    with torch.inference_mode():
        while start < len(order):
            longest = len(ids[order[start]])
            end = start
            while end < len(order) and (end - start + 1) * max(longest, len(ids[order[end]])) \
                    <= BATCH_TOKENS:
                longest = max(longest, len(ids[order[end]]))
                end += 1
            end = max(end, start + 1)
            batch = order[start:end]
            n = max(len(ids[i]) for i in batch)
            input_ids = torch.full((len(batch), n), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), n), dtype=torch.long)
            for row, i in enumerate(batch):  # left padding: the last position is the prompt's end
                input_ids[row, n - len(ids[i]):] = torch.tensor(ids[i])
                mask[row, n - len(ids[i]):] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            states = model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                           position_ids=positions.to(device), output_hidden_states=True,
                           use_cache=False).hidden_states
            m = mask.to(device).unsqueeze(-1).to(states[half].dtype)
            mean = (states[half] * m).sum(1) / m.sum(1)
            for k, h in enumerate((states[half][:, -1], states[late][:, -1], mean)):
                out[k][batch] = h.float().cpu().numpy()
            start = end
            progress(f"hidden states: {start:,}/{len(order):,} examples")
    return out
