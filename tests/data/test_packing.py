"""Packed rows must give exactly the loss and gradients of the same examples unpacked."""

import random

import pytest
import torch

from tunesmith.data.packing import (
    MIN_SHARED_PREFIX,
    collate_packed,
    collate_padded,
    micro_batches,
    pack,
    shared_prefix,
)
from tunesmith.data.render import IGNORE_INDEX, Tokenized
from tunesmith.modeling import build_tiny_model
from tunesmith.training.loss import CausalLMLoss


def test_best_fit_decreasing():
    assert pack([5, 3, 4], 8) == [[0, 1], [2]]
    rows = pack([7, 1, 6, 2, 5, 3], 8)
    assert sorted(map(sorted, rows)) == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(ValueError):
        pack([9], 8)


def test_pack_keeps_every_item_once_and_within_capacity():
    rng = random.Random(0)
    for _ in range(50):
        lengths = [rng.randint(1, 64) for _ in range(rng.randint(1, 40))]
        rows = pack(lengths, 64)
        assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
        assert all(sum(lengths[i] for i in r) <= 64 for r in rows)
        # best fit never needs more rows than twice the lower bound
        assert len(rows) <= 2 * -(-sum(lengths) // 64)


def items(n=6, seed=0, vocab=500):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(5, 30)
        ids = [rng.randrange(vocab) for _ in range(length)]
        answer = rng.randint(1, 4)
        labels = [IGNORE_INDEX] * (length - answer) + ids[-answer:]
        out.append(Tokenized(ids, labels))
    return out


def test_packed_positions_restart_per_example():
    xs = items(3)
    batch = collate_packed(xs, [[0, 1, 2]], pad_id=0)
    pos = batch.position_ids[0].tolist()
    n0, n1 = len(xs[0].input_ids), len(xs[1].input_ids)
    assert pos[:n0] == list(range(n0)) and pos[n0:n0 + n1] == list(range(n1))
    assert batch.attention_mask is None
    assert batch.n_tokens == sum(len(x.input_ids) for x in xs)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_packed_loss_and_gradients_equal_unpacked(arch):
    torch.manual_seed(0)
    model = build_tiny_model(500, arch=arch, seed=1)
    loss_fn = CausalLMLoss(model)
    xs = items(6, seed=2)

    def run(batches):
        model.zero_grad()
        total, count = 0.0, 0
        for b in batches:
            loss, n, _ = loss_fn(b)
            loss.backward()
            total, count = total + loss.item(), count + n.item()
        return total, count, {k: p.grad.clone() for k, p in model.named_parameters()}

    one_row = run([collate_packed(xs, [list(range(6))], pad_id=0)])
    two_rows = run(micro_batches(xs, True, max_tokens=64, pad_id=0))
    padded = run([collate_padded(xs, pad_id=0)])
    alone = run([collate_padded([x], pad_id=0) for x in xs])
    for other in (two_rows, padded, alone):
        assert other[1] == one_row[1]
        assert abs(other[0] - one_row[0]) < 1e-5 * max(1.0, abs(one_row[0]))
        for k, g in one_row[2].items():
            torch.testing.assert_close(other[2][k], g, rtol=1e-5, atol=1e-5)


def test_packing_without_position_ids_would_leak_attention():
    """The control: the same packed row as one causal sequence gives a different loss, so the
    equality above really comes from the per-example attention."""
    model = build_tiny_model(500, seed=1)
    loss_fn = CausalLMLoss(model)
    xs = items(6, seed=2)
    packed = collate_packed(xs, [list(range(6))], pad_id=0)
    leaky = collate_packed(xs, [list(range(6))], pad_id=0)
    leaky.position_ids = torch.arange(leaky.input_ids.shape[1]).unsqueeze(0)
    leaky.segments = None  # one causal sequence over the whole row
    with torch.no_grad():
        assert abs(loss_fn(packed)[0].item() - loss_fn(leaky)[0].item()) > 1e-3


def test_micro_batches_respect_the_token_budget():
    xs = items(30, seed=3)
    batches = micro_batches(xs, pack_rows=False, max_tokens=100, pad_id=0)
    assert all(b.input_ids.numel() <= 100 or b.input_ids.shape[0] == 1 for b in batches)
    assert sum(b.input_ids.shape[0] for b in batches) == 30


def prefixed(n=6, seed=4, prefix=24, vocab=500):
    """`items` that all start with the same untrained prefix (a system prompt)."""
    rng = random.Random(seed)
    head = [rng.randrange(vocab) for _ in range(prefix)]
    return [Tokenized(head + list(x.input_ids), [IGNORE_INDEX] * prefix + list(x.labels))
            for x in items(n, seed=seed)]


def test_shared_prefix_is_the_common_untrained_start():
    xs = prefixed(prefix=24)
    assert shared_prefix(xs) == 24 + _common(xs, 24)
    assert shared_prefix(xs[:1]) == 0  # nothing to share with
    short = prefixed(prefix=MIN_SHARED_PREFIX - 6)
    assert _common(short, 0) < MIN_SHARED_PREFIX and shared_prefix(short) == 0  # not worth it
    # a target 20 tokens in: the prefix stops before the token that predicts it
    first = xs[0]
    xs[0] = Tokenized(first.input_ids, [IGNORE_INDEX] * 20 + list(first.input_ids[20:]))
    assert shared_prefix(xs) == 19


def _common(xs, start):
    """How many tokens after `start` all items still share."""
    k = 0
    while all(len(x.input_ids) > start + k + 1 for x in xs) and len(
            {x.input_ids[start + k] for x in xs}) == 1:
        k += 1
    return k


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_a_shared_prefix_gives_the_loss_and_gradients_of_each_example_alone(arch):
    """The prefix once per row, each example after it attending to it: every example's loss and
    gradients are those it has alone (fp32)."""
    torch.manual_seed(0)
    model = build_tiny_model(500, arch=arch, seed=1)
    loss_fn = CausalLMLoss(model)
    xs = prefixed(6, seed=5, prefix=24)

    def run(batches):
        model.zero_grad()
        total, count = 0.0, 0
        for b in batches:
            loss, n, _ = loss_fn(b)
            loss.backward()
            total, count = total + loss.item(), count + n.item()
        return total, count, {k: p.grad.clone() for k, p in model.named_parameters()}

    shared_one = micro_batches(xs, True, max_tokens=4096, pad_id=0, share_prefix=True)
    shared_two = micro_batches(xs, True, max_tokens=90, pad_id=0, share_prefix=True)
    assert len(shared_one) == 1 and len(shared_two) > 1
    assert shared_one[0].prefix == [shared_prefix(xs)]
    assert shared_one[0].input_ids.numel() < sum(len(x.input_ids) for x in xs)  # fewer tokens
    assert shared_one[0].n_tokens == sum(len(x.input_ids) for x in xs)  # billed as the examples
    alone = run([collate_padded([x], pad_id=0) for x in xs])
    for batches in (shared_one, shared_two):
        other = run(batches)
        assert other[1] == alone[1]
        assert abs(other[0] - alone[0]) < 1e-5 * max(1.0, abs(alone[0]))
        for k, g in alone[2].items():
            torch.testing.assert_close(other[2][k], g, rtol=1e-5, atol=1e-5)


def test_a_shared_prefix_without_its_attention_would_be_wrong():
    """The control: the same shared row with the prefix unseen by the examples (each example
    attending only to itself) gives another loss."""
    model = build_tiny_model(500, seed=1)
    loss_fn = CausalLMLoss(model)
    xs = prefixed(6, seed=5, prefix=24)
    batch = micro_batches(xs, True, max_tokens=4096, pad_id=0, share_prefix=True)[0]
    blind = micro_batches(xs, True, max_tokens=4096, pad_id=0, share_prefix=True)[0]
    blind.prefix = None
    with torch.no_grad():
        assert abs(loss_fn(batch)[0].item() - loss_fn(blind)[0].item()) > 1e-3
