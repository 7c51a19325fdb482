"""Classification by label log-likelihood, all labels in one pass over the cached prompt.

The labels' token sequences form a prefix tree. The prompt runs once (its KV cache kept); then
every tree node runs in one more pass, each attending to the prompt and to its own ancestors:

    labels   "card_arrival"  -> card _ar rival <eot>
             "card_linking"  -> card _link ing <eot>
    tree     card ─┬─ _ar ─ rival ─ <eot>          nodes in one row:  card _ar rival <eot> _link ing <eot>
                   └─ _link ─ ing ─ <eot>          position ids:       P   P+1  P+2   P+3  P+1  P+2  P+3

A label's score is the sum of its tokens' log-probabilities (its answer text and the end-of-turn
token, so "pos" cannot win by being a prefix of "positive"). The cost grows with the number of
distinct tree nodes, not with labels x prompt length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tunesmith.data.render import render
from tunesmith.generation import left_pad


@dataclass
class LabelTree:
    tokens: list[int]
    """Token of each node."""
    parent: list[int]
    """Parent node of each node; -1 for nodes right after the prompt."""
    depth: list[int]
    paths: list[list[int]]
    """For each label, the nodes of its tokens in order."""

    @classmethod
    def build(cls, sequences: list[list[int]]) -> LabelTree:
        tree = cls([], [], [], [])
        children: dict[tuple[int, int], int] = {}
        for seq in sequences:
            node, path = -1, []
            for token in seq:
                key = (node, token)
                if key not in children:
                    children[key] = len(tree.tokens)
                    tree.tokens.append(token)
                    tree.parent.append(node)
                    tree.depth.append(0 if node < 0 else tree.depth[node] + 1)
                node = children[key]
                path.append(node)
            tree.paths.append(path)
        return tree

    def ancestry(self) -> torch.Tensor:
        """(T, T) boolean: node i may attend to node j (j is i or one of its ancestors)."""
        n = len(self.tokens)
        allowed = torch.eye(n, dtype=torch.bool)
        for i in range(n):
            j = self.parent[i]
            while j >= 0:
                allowed[i, j] = True
                j = self.parent[j]
        return allowed


def answer_tokens(tokenizer, label: str) -> list[int]:
    """The tokens a trained model produces for `label`: the template's answer text up to and
    including the end-of-turn (EOS) token, exactly as training rendered them."""
    convo = [{"role": "user", "content": "x"}]
    start = render(tokenizer, [convo], add_generation_prompt=True)[0]
    full = render(tokenizer, [convo + [{"role": "assistant", "content": label}]])[0]
    ids = tokenizer(full[len(start):], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    if eos in ids:
        ids = ids[: ids.index(eos) + 1]
    return ids


@torch.inference_mode()
def score_labels(model, tokenizer, prompts: list[str], labels: list[str],
                 batch_size: int = 16) -> torch.Tensor:
    """Log-likelihood of each label as the answer to each prompt: shape (prompts, labels).

    Args:
        prompts: rendered prompts ending with the generation prompt (`<|im_start|>assistant\\n`).
        labels: the label set.
    """
    tree = LabelTree.build([answer_tokens(tokenizer, label) for label in labels])
    ancestry = tree.ancestry()
    internal = [i for i in range(len(tree.tokens)) if i in set(tree.parent)]
    row_of = {node: k for k, node in enumerate(internal)}  # node -> row of its logits
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    out = torch.empty(len(prompts), len(labels))
    for first in range(0, len(prompts), batch_size):
        enc, ids, mask = left_pad(tokenizer, prompts[first:first + batch_size])
        width = ids.shape[1]
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        ids, mask, pos = ids.to(device), mask.to(device), pos.to(device)
        prompt_out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                           logits_to_keep=1)
        first_logp = prompt_out.logits[:, -1].float().log_softmax(-1)  # (B, V)
        # The tree pass: (B, T) nodes, each seeing the real prompt tokens and its ancestors.
        b, t = len(enc), len(tree.tokens)
        node_ids = torch.tensor(tree.tokens, device=device).expand(b, t)
        lengths = mask.sum(-1, keepdim=True)
        node_pos = lengths + torch.tensor(tree.depth, device=device)
        see = torch.cat([mask.bool()[:, None, :].expand(b, t, width),
                         ancestry.to(device)[None].expand(b, t, t)], dim=-1)  # (B, T, P+T)
        bias = torch.zeros(see.shape, dtype=dtype, device=device)
        bias.masked_fill_(~see, torch.finfo(dtype).min)
        logp = None
        if internal:
            tree_out = model(input_ids=node_ids, position_ids=node_pos, attention_mask=bias[:, None],
                             cache=prompt_out.cache, use_cache=True,
                             logits_to_keep=torch.tensor(internal, device=device))
            logp = tree_out.logits.float().log_softmax(-1)  # (B, internal nodes, V)
        for j, path in enumerate(tree.paths):
            total = first_logp[:, tree.tokens[path[0]]].clone()
            for node in path[1:]:
                total += logp[:, row_of[tree.parent[node]], tree.tokens[node]]
            out[first:first + b, j] = total.cpu()
    return out
