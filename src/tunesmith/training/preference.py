"""Preference fine-tuning (DPO, Rafailov et al. 2023) in the one training loop.

Each preference example is a pair of sequences, the prompt with the preferred answer (c) and
with the rejected one (r), kept next to each other in the same forward pass:

    row:       [prompt c c c][prompt r r]  [prompt' c' c'][prompt' r' r' r']   packed as SFT
    seq_ids     0 0 0 0 0 0 0 1 1 1 1 1 1   2 2 2 ...                          -1 on padding

A sequence's log-probability is the sum of its answer tokens' log-probabilities (the loss mask
of supervised training). With the reference model's log-probabilities of the same sequences,

    reward(y)  = beta * (log pi(y | x) - log pi_ref(y | x))
    loss       = -log sigmoid(reward(c) - reward(r))            mean over the step's pairs

The reference is the model training starts from (the base model for a new LoRA adapter, the
continued model for continued fine-tuning). It is fixed, so its log-probabilities are computed
once, before the first step, in one forward pass over the data (TRL's
`precompute_ref_log_probs`), and saved in RUN/reference.pt for a resumed run: no second copy of
the weights in memory (full fine-tuning) and no adapter toggling per step (LoRA), at the cost
of one inference pass, less than the 3 reference passes of 3 epochs computed on the fly.

Validation metrics: preference accuracy (the share of pairs whose preferred answer gets the
higher reward) and the mean reward margin, next to the DPO loss.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.atomic import atomic_open
from tunesmith.data.examples import Example
from tunesmith.data.packing import Batch, collate_packed, collate_padded, pack
from tunesmith.data.preference import PreferenceExample
from tunesmith.data.render import Tokenized, tokenize_example
from tunesmith.errors import UsageError
from tunesmith.modeling import load_model
from tunesmith.training import distributed as D
from tunesmith.training.loss import CausalLMLoss

log = logging.getLogger(__name__)

REFERENCE_FILE = "reference.pt"


@dataclass
class Pair:
    """A preference example as tokens: the preferred and the rejected sequence."""

    chosen: Tokenized
    rejected: Tokenized
    ref: tuple[float, float] | None = None
    """The reference model's log-probabilities of the two answers (set before training)."""

    @property
    def input_ids(self) -> list[int]:
        """Both sequences' tokens (their count is what packing and throughput see)."""
        return self.chosen.input_ids + self.rejected.input_ids

    @property
    def n_loss_tokens(self) -> int:
        """0 when either answer lost all its tokens to truncation (the pair is then skipped)."""
        return min(self.chosen.n_loss_tokens, self.rejected.n_loss_tokens)

    @property
    def truncated(self) -> bool:
        return self.chosen.truncated or self.rejected.truncated


@dataclass
class PairBatch:
    """One forward pass over whole pairs: sequence 2i is pair i's preferred answer, 2i+1 its
    rejected one."""

    batch: Batch
    seq_ids: torch.Tensor
    """(rows, width): the sequence each position belongs to, -1 for padding."""
    ref: torch.Tensor
    """(2 * pairs,) reference log-probabilities (zeros while they are being computed)."""
    n_pairs: int

    @property
    def n_targets(self) -> int:
        return self.n_pairs

    @property
    def n_tokens(self) -> int:
        return self.batch.n_tokens

    def to(self, device: torch.device | str) -> PairBatch:
        return PairBatch(self.batch.to(device), self.seq_ids.to(device), self.ref.to(device),
                         self.n_pairs)


def collate_pairs(pairs: list[Pair], packed: bool, pad_id: int) -> PairBatch:
    """Packed: one row, the pairs' sequences end to end. Padded: one row per sequence."""
    items = [x for p in pairs for x in (p.chosen, p.rejected)]
    if packed:
        batch = collate_packed(items, [list(range(len(items)))], pad_id)
        seq_ids = torch.full(batch.input_ids.shape, -1, dtype=torch.long)
        for k, (start, end) in enumerate(batch.segments[0][:len(items)]):
            seq_ids[0, start:end] = k
    else:
        batch = collate_padded(items, pad_id)
        seq_ids = torch.where(batch.attention_mask.bool(),
                              torch.arange(len(items))[:, None], torch.tensor(-1))
    ref = torch.tensor([v for p in pairs for v in (p.ref or (0.0, 0.0))], dtype=torch.float32)
    return PairBatch(batch, seq_ids, ref, len(pairs))


def pair_batches(pairs: list[Pair], packed: bool, max_tokens: int, pad_id: int) -> list[PairBatch]:
    """A step's pairs as forward passes of at most `max_tokens` tokens (a pair is never split:
    its two sequences share the pass)."""
    if not pairs:
        return []
    lengths = [len(p.input_ids) for p in pairs]
    if packed:
        groups = pack(lengths, max(max_tokens, max(lengths)))
    else:
        groups, current, width = [], [], 0
        for i, p in enumerate(pairs):
            w = max(len(p.chosen.input_ids), len(p.rejected.input_ids))
            if current and max(width, w) * 2 * (len(current) + 1) > max_tokens:
                groups.append(current)
                current, width = [], 0
            current.append(i)
            width = max(width, w)
        groups.append(current)
    return [collate_pairs([pairs[i] for i in g], packed, pad_id) for g in groups]


class DPOLoss(nn.Module):
    """Forward returns (sum of the pairs' DPO losses, pairs, then sums of: pairs ranked right,
    reward margins, preferred rewards, rejected rewards)."""

    stats = ("preference_accuracy", "reward_margin", "chosen_reward", "rejected_reward")

    def __init__(self, model: nn.Module, beta: float) -> None:
        super().__init__()
        self.lm = CausalLMLoss(model)
        self.beta = beta

    def sequence_logps(self, pb: PairBatch) -> torch.Tensor:
        """(2 * pairs,) summed log-probabilities of each sequence's answer tokens."""
        token_logps, _, keep = self.lm.token_logps(pb.batch)  # (N,)
        owner = pb.seq_ids[:, 1:][keep]  # the sequence of each target token
        return torch.zeros(2 * pb.n_pairs, device=token_logps.device,
                           dtype=token_logps.dtype).index_add(0, owner, token_logps)

    def forward(self, pb: PairBatch) -> tuple[torch.Tensor, ...]:
        logps = self.sequence_logps(pb)
        rewards = self.beta * (logps - pb.ref)
        chosen, rejected = rewards[0::2], rewards[1::2]
        margin = chosen - rejected
        losses = -F.logsigmoid(margin)
        n = torch.tensor(pb.n_pairs, device=logps.device)
        return (losses.sum(), n, (margin > 0).sum(), margin.detach().sum(),
                chosen.detach().sum(), rejected.detach().sum())


@dataclass
class PreferenceObjective:
    """What a DPO run learns: the `Objective` interface of `objectives.py` for pairs."""

    beta: float
    head: str = "lm"
    labels: list[str] = field(default_factory=list)

    def meta(self) -> dict:
        return {"head": "lm", "head_labels": None, "loss": "dpo", "beta": self.beta}

    def tokenize(self, tokenizer, example: Example, max_seq_len: int) -> Pair:
        if not isinstance(example, PreferenceExample):
            raise UsageError(f"line {example.line}: DPO needs preference-format rows "
                             '({"input": ..., "preferred_output": ..., "non_preferred_output": '
                             "...}); this file holds chat examples (train them with --method "
                             "lora or full).")
        return Pair(tokenize_example(tokenizer, example, max_seq_len),
                    tokenize_example(tokenizer, example.rejected_example(), max_seq_len))

    def load(self, spec: str, *, dtype=None, device=None, quantization=None) -> nn.Module:
        return load_model(spec, device=device, dtype=dtype, quantization=quantization)

    def loss(self, model: nn.Module) -> nn.Module:
        return DPOLoss(model, self.beta)

    def batches(self, pairs: list[Pair], pack_rows: bool, max_tokens: int,
                pad_id: int, share_prefix: bool = False) -> list[PairBatch]:
        return pair_batches(pairs, pack_rows, max_tokens, pad_id)  # pairs share no prefix yet


@torch.no_grad()
def reference_logps(loss_fn: DPOLoss, pairs: list[Pair], packed: bool, max_tokens: int,
                    pad_id: int, device: torch.device, autocast=contextlib.nullcontext,
                    shard: tuple[int, int] = (0, 1), passes=None) -> list[float]:
    """Each pair's two sequence log-probabilities under the model as it is now (2 per pair,
    flattened); with `shard` = (rank, world) a process computes every world-th pair and leaves
    zeros elsewhere (sum over processes to combine). `passes(n)`: how many passes to run for
    this process's n (FSDP: the most any process runs, since every pass is a collective; the
    extra ones repeat the last and count nothing)."""
    rank, world = shard
    out = [0.0] * (2 * len(pairs))
    mine = list(range(rank, len(pairs), world))
    was_training = loss_fn.training
    loss_fn.eval()
    # Group by length so a pass holds pairs of similar size; the order is restored by index.
    budget = max(max_tokens, max((len(pairs[i].input_ids) for i in mine), default=0))
    groups = [[mine[k] for k in g] for g in pack([len(pairs[i].input_ids) for i in mine], budget)]
    total = passes(len(groups)) if passes else len(groups)
    for k in range(total):
        chosen = groups[min(k, len(groups) - 1)] if groups else [0]  # 0: a pass that counts
        pb = collate_pairs([pairs[i] for i in chosen], packed, pad_id).to(device)  # nothing
        with autocast():
            logps = loss_fn.sequence_logps(pb).float().cpu().tolist()
        if k >= len(groups):
            continue
        for j, i in enumerate(chosen):
            out[2 * i], out[2 * i + 1] = logps[2 * j], logps[2 * j + 1]
    loss_fn.train(was_training)
    return out


def attach_reference(pairs: list[Pair], values: list[float]) -> None:
    for i, p in enumerate(pairs):
        p.ref = (values[2 * i], values[2 * i + 1])


def save_reference(run: Path, train: list[float], valid: list[float]) -> None:
    with atomic_open(run / REFERENCE_FILE, "wb") as f:
        torch.save({"train": torch.tensor(train, dtype=torch.float64),
                    "valid": torch.tensor(valid, dtype=torch.float64)}, f)


def load_reference(run: Path, n_train: int, n_valid: int) -> tuple[list[float], list[float]] | None:
    """The saved reference log-probabilities, if present and of this run's size."""
    path = run / REFERENCE_FILE
    if not path.is_file():
        return None
    saved = torch.load(path, weights_only=True)
    if len(saved["train"]) != 2 * n_train or len(saved["valid"]) != 2 * n_valid:
        return None
    return saved["train"].tolist(), saved["valid"].tolist()


def run_reference(run: Path, loss_fn: DPOLoss, train: list[Pair], valid: list[Pair], *,
                  resuming: bool, pack: bool, max_tokens: int, pad_id: int, autocast,
                  info, sharded: bool = False) -> None:
    """Attach the reference log-probabilities to a run's pairs: computed with the model as it
    starts (each process its share, summed) and saved in RUN/reference.pt, or, for a resumed
    run, read back from there."""
    saved = load_reference(run, len(train), len(valid)) if resuming else None
    if saved is None:
        if resuming:
            raise UsageError(f"--resume: {run / REFERENCE_FILE} (the reference model's "
                             "log-probabilities) is missing; start the run again.")
        t0 = time.perf_counter()
        passes = (lambda n: D.all_reduce_max(n, info)) if sharded else None
        saved = tuple(D.all_reduce_sum(
            reference_logps(loss_fn, items, pack, max_tokens, pad_id, info.device, autocast,
                            (info.rank, info.world), passes), info)
            for items in (train, valid))
        if info.main:
            run.mkdir(parents=True, exist_ok=True)
            save_reference(run, *saved)
        log.info("reference log-probabilities of %d pairs in %.1f s", len(train) + len(valid),
                 time.perf_counter() - t0)
    attach_reference(train, saved[0])
    attach_reference(valid, saved[1])
