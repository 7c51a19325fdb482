"""Classification by label log-likelihood: the labels as a prefix tree, searched over the cached
prompt, so cost grows with the number of examples and not examples x labels x prompt length.

The labels' token sequences form a prefix tree. Tree nodes run as extra tokens on top of the
prompt's KV cache, each attending to the prompt and to its own ancestors only:

    labels   "card_arrival"  -> card _ar rival <eot>
             "card_linking"  -> card _link ing <eot>
    tree     card ─┬─ _ar ─ rival ─ <eot>          nodes in one row:  card _ar rival _link ing
                   └─ _link ─ ing ─ <eot>          position ids:       P   P+1  P+2   P+1  P+2

A label's score is the sum of its tokens' log-probabilities (its answer text and the end-of-turn
token, so "pos" cannot win by being a prefix of "positive"). Leaves never run: their
probability comes from their parent's logits.

Three things keep it fast:
- the prompt tokens every example shares (system instruction, few-shot examples) run once, and
  their cache is copied into each batch;
- with `prune=True` the tree is searched best-first, a subtree at a time: log-probabilities are
  never positive, so a node whose score is already below the best complete label cannot lead to
  a better one and is never run. The arg-max is exact; labels that cannot win are left at -inf;
- each pass runs, per example, the best open nodes together with the single-child chains
  below them (up to `budget` nodes), so a confident model needs about one pass per branching
  point of its answer, not one per token.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, fields

import torch

from tunesmith.data.render import render


@dataclass
class LabelTree:
    tokens: list[int]
    """Token of each node."""
    parent: list[int]
    """Parent node of each node; -1 for nodes right after the prompt."""
    depth: list[int]
    paths: list[list[int]]
    """For each label, the nodes of its tokens in order."""
    children: list[list[int]] = field(default_factory=list)

    @classmethod
    def build(cls, sequences: list[list[int]]) -> LabelTree:
        tree = cls([], [], [], [])
        index: dict[tuple[int, int], int] = {}
        for seq in sequences:
            node, path = -1, []
            for token in seq:
                key = (node, token)
                if key not in index:
                    index[key] = len(tree.tokens)
                    tree.tokens.append(token)
                    tree.parent.append(node)
                    tree.depth.append(0 if node < 0 else tree.depth[node] + 1)
                    tree.children.append([])
                    if node >= 0:
                        tree.children[node].append(index[key])
                node = index[key]
                path.append(node)
            tree.paths.append(path)
        return tree

    @property
    def roots(self) -> list[int]:
        return [i for i, p in enumerate(self.parent) if p < 0]

    def lineage(self, node: int) -> list[int]:
        """The node and its ancestors."""
        out = []
        while node >= 0:
            out.append(node)
            node = self.parent[node]
        return out

    def ancestry(self) -> torch.Tensor:
        """(T, T) boolean: node i may attend to node j (j is i or one of its ancestors)."""
        allowed = torch.zeros(len(self.tokens), len(self.tokens), dtype=torch.bool)
        for i in range(len(self.tokens)):
            allowed[i, self.lineage(i)] = True
        return allowed


@dataclass
class SearchStats:
    """What a `score_labels` call ran (added up over its calls)."""

    examples: int = 0
    nodes_run: int = 0
    """Tree nodes run, over all examples (an exhaustive search runs every internal node)."""
    required: int = 0
    """Nodes any exact search must run, over all examples: those whose path log-probability
    is at least the best label's (an unrun one could still lead to a better label, since the
    log-probabilities of the tokens below it could all be 0)."""
    prompt_tokens: int = 0
    """Prompt tokens run, over all examples: each example's own, not the shared prefix (run once)
    nor padding."""
    passes: int = 0
    tokens: int = 0
    """Tokens through the model (prompt and tree passes, padding included)."""
    seconds: float = 0.0
    """Time inside forward passes."""

    def add(self, other: SearchStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


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


def shared_prefix(sequences: list[list[int]]) -> int:
    """Length of the token prefix all sequences share, leaving each at least one token."""
    if not sequences:
        return 0
    n = min(map(len, sequences)) - 1
    first = sequences[0]
    for seq in sequences[1:]:
        k = 0
        while k < n and seq[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


@torch.inference_mode()
def score_labels(model, tokenizer, prompts: list[str], labels: list[str], batch_size: int = 16,
                 *, prune: bool = True, budget: int = 8, stats: SearchStats | None = None,
                 offsets=None) -> torch.Tensor:
    """Log-likelihood of each label as the answer to each prompt: shape (prompts, labels).

    Args:
        prompts: rendered prompts ending with the generation prompt (`<|im_start|>assistant\\n`).
        labels: the label set.
        prune: search best-first and skip labels that cannot win (left at -inf; the arg-max and
            its score are exact). False scores every label.
        budget: tree nodes run per example per forward pass when pruning.
        stats: if given, what the search ran is added to it.
        offsets: subtracted from each label's score, (labels,) or (prompts, labels): a label
            prior to divide out (contextual calibration). The search maximises the calibrated
            score, still exactly.
    """
    tree = LabelTree.build([answer_tokens(tokenizer, label) for label in labels])
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    shared = shared_prefix(encoded)
    device = next(model.parameters()).device
    prefix_cache = None
    if shared:
        prefix_cache = model(input_ids=torch.tensor([encoded[0][:shared]], device=device),
                             use_cache=True, logits_to_keep=1).cache
    search = _TreeSearch(tree, prune, budget if prune else len(tree.tokens), stats or SearchStats())
    out = torch.full((len(prompts), len(labels)), float("-inf"))
    prior = torch.zeros((len(prompts), len(labels)))
    if offsets is not None:
        prior += torch.as_tensor(offsets, dtype=torch.float32)
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))  # batches of like length
    for first in range(0, len(prompts), batch_size):
        batch = order[first:first + batch_size]
        cache = None
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(batch))
        out[batch] = search.run(model, [encoded[i][shared:] for i in batch], shared, cache,
                                prior[batch])
    return out


class _TreeSearch:
    """The label-tree search for one batch of prompts (see the module docstring)."""

    def __init__(self, tree: LabelTree, prune: bool, budget: int, stats: SearchStats):
        self.tree, self.prune, self.budget, self.stats = tree, prune, max(budget, 1), stats
        self.internal = [bool(c) for c in tree.children]
        self.label_ends = [path[-1] for path in tree.paths]
        self.through: list[list[int]] = [[] for _ in tree.tokens]  # node -> labels below it
        for j, path in enumerate(tree.paths):
            for node in path:
                self.through[node].append(j)

    def run(self, model, rows: list[list[int]], shared: int, cache,
            prior: torch.Tensor) -> torch.Tensor:
        """Scores of every label for each row, less `prior` (rows, labels)."""
        tree = self.tree
        # A node can still lead to a label worth at most its path score + this bonus.
        cost = prior.tolist()
        bonus = [[max(-c[j] for j in through) for through in self.through] for c in cost]
        device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype
        b, width = len(rows), max(map(len, rows))
        # The prompt pass: each row's own tokens, left-padded, on top of the shared prefix.
        ids = torch.zeros((b, width), dtype=torch.long)
        own = torch.zeros((b, width), dtype=torch.bool)
        for r, row in enumerate(rows):
            ids[r, width - len(row):] = torch.tensor(row)
            own[r, width - len(row):] = True
        visible = torch.cat([torch.ones((b, shared), dtype=torch.bool), own], dim=1)  # (b, P)
        causal = torch.ones((width, shared + width), dtype=torch.bool).tril(shared)
        see = visible[:, None, :] & causal[None]
        pos = shared + own.long().cumsum(-1) - 1
        lengths = shared + own.sum(-1)  # prompt length per row: position of the first node
        self.stats.prompt_tokens += int(own.sum())
        prompt_out = self._forward(model, input_ids=ids.to(device),
                                   position_ids=pos.clamp(min=0).to(device),
                                   attention_mask=_bias(see, dtype, device), cache=cache,
                                   use_cache=True, logits_to_keep=1)
        cache = prompt_out.cache
        root = prompt_out.logits[:, -1].float().log_softmax(-1).cpu()

        score: list[dict[int, float]] = [{} for _ in range(b)]  # node -> log-prob of its path
        frontier: list[list[int]] = [[] for _ in range(b)]  # scored internal nodes not yet run
        for r in range(b):
            for node in tree.roots:
                score[r][node] = root[r, tree.tokens[node]].item()
                if self.internal[node]:
                    frontier[r].append(node)
        column: list[dict[int, int]] = [{} for _ in range(b)]  # node -> its cache column, once run
        columns = shared + width
        active = list(range(b))  # the rows still searching, in the cache's batch order
        while True:
            chosen = {r: self._choose(score[r], frontier[r], bonus[r], cost[r]) for r in active}
            if not any(chosen.values()):
                break
            if not all(chosen.values()):  # finished rows leave the batch (and the cache)
                keep = [k for k, r in enumerate(active) if chosen[r]]
                cache.batch_select_indices(torch.tensor(keep, device=device))
                visible = visible[keep]
                active = [active[k] for k in keep]
            q = max(len(chosen[r]) for r in active)
            tokens = torch.zeros((len(active), q), dtype=torch.long)
            npos = torch.zeros((len(active), q), dtype=torch.long)
            see = torch.zeros((len(active), q, columns + q), dtype=torch.bool)
            see[:, :, :visible.shape[1]] = visible[:, None, :]
            for k, r in enumerate(active):
                nodes = chosen[r]
                for i, node in enumerate(nodes):
                    column[r][node] = columns + i
                for i, node in enumerate(nodes):
                    tokens[k, i] = tree.tokens[node]
                    npos[k, i] = lengths[r] + tree.depth[node]
                    see[k, i, [column[r][a] for a in tree.lineage(node)]] = True
                for i in range(len(nodes), q):  # padding: sees the prompt and itself
                    see[k, i, columns + i] = True
            self.stats.nodes_run += sum(len(chosen[r]) for r in active)
            logits = self._forward(model, input_ids=tokens.to(device), position_ids=npos.to(device),
                                   attention_mask=_bias(see, dtype, device), cache=cache,
                                   use_cache=True).logits.float()
            logp = (logits - logits.logsumexp(-1, keepdim=True)).cpu()
            columns += q
            for k, r in enumerate(active):
                nodes = chosen[r]
                ran = set(nodes)
                frontier[r] = [n for n in frontier[r] if n not in ran]
                for i, node in enumerate(nodes):  # breadth-first: parents before children
                    for child in tree.children[node]:
                        score[r][child] = score[r][node] + logp[k, i, tree.tokens[child]].item()
                        if self.internal[child] and child not in ran:
                            frontier[r].append(child)
        out = torch.full((b, len(self.label_ends)), float("-inf"))
        for r in range(b):
            for j, end in enumerate(self.label_ends):
                if end in score[r]:
                    out[r, j] = score[r][end] - cost[r][j]
            # nodes left unscored sit below a node already worse than the best label
            best = out[r].max().item()
            self.stats.required += sum(1 for n, v in score[r].items()
                                       if self.internal[n] and v + bonus[r][n] >= best)
        self.stats.examples += b
        return out

    def _forward(self, model, **inputs):
        start = time.perf_counter()
        out = model(**inputs)
        self.stats.seconds += time.perf_counter() - start
        self.stats.passes += 1
        self.stats.tokens += inputs["input_ids"].numel()
        return out

    def _choose(self, score: dict[int, float], frontier: list[int], bonus: list[float],
                cost: list[float]) -> list[int]:
        """The internal nodes to run next.

        Exhaustive: every one not run yet, parents before children. Pruned: the best frontier
        nodes that could still beat the best complete label, each with the chain of
        single-child nodes below it (those would run next anyway, so running them now saves a
        pass), up to the budget."""
        if not self.prune:
            chosen = list(frontier)
            for node in chosen:
                chosen.extend(c for c in self.tree.children[node] if self.internal[c])
            return chosen
        best = max((score[e] - cost[j] for j, e in enumerate(self.label_ends) if e in score),
                   default=float("-inf"))
        candidates = sorted((n for n in frontier if score[n] + bonus[n] >= best),
                            key=lambda n: -(score[n] + bonus[n]))
        chosen = []
        for node in candidates:
            while len(chosen) < self.budget:
                chosen.append(node)
                kids = self.tree.children[node]
                if len(kids) != 1 or not self.internal[kids[0]]:
                    break
                node = kids[0]
        return chosen


def _bias(see: torch.Tensor, dtype, device) -> torch.Tensor:
    """Boolean (B, Q, K) visibility as the additive (B, 1, Q, K) mask the model takes."""
    bias = torch.zeros(see.shape, dtype=dtype)
    bias.masked_fill_(~see, torch.finfo(dtype).min)
    return bias[:, None].to(device)
