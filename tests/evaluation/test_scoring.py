"""Label scoring over the prefix tree equals scoring each label with its own forward pass."""

import torch

from tunesmith.evaluation.scoring import LabelTree, SearchStats, answer_tokens, score_labels
from tunesmith.modeling import build_tiny_model


def test_tree_shares_prefixes():
    tree = LabelTree.build([[1, 2, 3], [1, 2, 4], [5]])
    assert tree.tokens == [1, 2, 3, 4, 5]
    assert tree.parent == [-1, 0, 1, 1, -1] and tree.depth == [0, 1, 2, 2, 0]
    assert tree.paths == [[0, 1, 2], [0, 1, 3], [4]]
    allowed = tree.ancestry()
    assert allowed[3].tolist() == [True, True, False, True, False]


def test_answer_tokens_end_with_the_end_of_turn(tokenizer):
    ids = answer_tokens(tokenizer, "billing")
    assert tokenizer.decode(ids) == "billing<|im_end|>"


def naive(model, tokenizer, prompt, label):
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a = answer_tokens(tokenizer, label)
    ids = torch.tensor([p + a])
    with torch.no_grad():
        logp = model(ids).logits[0].float().log_softmax(-1)
    return sum(logp[len(p) - 1 + k, t].item() for k, t in enumerate(a))


LABELS = ["card_arrival", "card_linking", "card_about_to_expire", "refund", "Refund",
          "card_payment_fee_charged", "cash_withdrawal_charge", "pending_transfer"]


def _prompts(tokenizer, texts):
    return [tokenizer.apply_chat_template([{"role": "user", "content": t}], tokenize=False,
                                          add_generation_prompt=True) for t in texts]


def test_tree_scores_equal_separate_passes(tokenizer):
    model = build_tiny_model(len(tokenizer), seed=3).eval()
    prompts = _prompts(tokenizer, ("where is my card", "I want my money back now please", "hi"))
    scores = score_labels(model, tokenizer, prompts, LABELS, batch_size=2, prune=False)
    for i, prompt in enumerate(prompts):
        for j, label in enumerate(LABELS):
            assert abs(scores[i, j].item() - naive(model, tokenizer, prompt, label)) < 1e-4


def test_pruned_search_finds_the_exact_best_label(tokenizer):
    """Best-first with a budget of 1 and 3 nodes per pass: many rounds, the cache growing, and
    pruning; the winner and its score are those of the exhaustive scoring."""
    model = build_tiny_model(len(tokenizer), seed=5).eval()
    prompts = _prompts(tokenizer, ("where is my card", "refund please", "hi", "cash?", "x" * 40))
    full_stats = SearchStats()
    full = score_labels(model, tokenizer, prompts, LABELS, batch_size=3, prune=False,
                        stats=full_stats)
    tree = LabelTree.build([answer_tokens(tokenizer, label) for label in LABELS])
    internal = sum(1 for c in tree.children if c)
    assert full_stats.examples == 5 and full_stats.nodes_run == 5 * internal
    # the nodes any exact search must run: a node scoring at least the best label's score
    assert 0 < full_stats.required < full_stats.nodes_run
    for budget in (1, 3):
        stats = SearchStats()
        pruned = score_labels(model, tokenizer, prompts, LABELS, batch_size=3, budget=budget,
                              stats=stats)
        assert stats.required <= stats.nodes_run < full_stats.nodes_run
        assert abs(stats.required - full_stats.required) <= 1  # float ties aside
        assert stats.passes > full_stats.passes and stats.tokens > 0 and stats.seconds > 0
        assert stats.prompt_tokens == full_stats.prompt_tokens > 0
        assert pruned.argmax(-1).tolist() == full.argmax(-1).tolist()
        torch.testing.assert_close(pruned.max(-1).values, full.max(-1).values, atol=1e-4, rtol=0)
        known = pruned > float("-inf")
        torch.testing.assert_close(pruned[known], full[known], atol=1e-4, rtol=0)


def test_shared_prefix_leaves_a_token_to_each_prompt():
    from tunesmith.evaluation.scoring import shared_prefix
    assert shared_prefix([[1, 2, 3], [1, 2, 4, 5]]) == 2
    assert shared_prefix([[1, 2], [1, 2, 3]]) == 1
    assert shared_prefix([[7, 8, 9]]) == 2 and shared_prefix([[5], [6]]) == 0


def test_calibrated_pruned_search_maximises_the_calibrated_score(tokenizer):
    """Offsets (a label prior) change which label wins; the pruned search still finds the exact
    arg-max of score - offset, per label set (labels,) and per prompt (prompts, labels)."""
    model = build_tiny_model(len(tokenizer), seed=5).eval()
    prompts = _prompts(tokenizer, ("where is my card", "refund please", "hi", "cash?"))
    full = score_labels(model, tokenizer, prompts, LABELS, batch_size=3, prune=False)
    g = torch.Generator().manual_seed(0)
    winner = full.argmax(-1)
    per_label = torch.randn(len(LABELS), generator=g)
    per_label[winner[0]] += 30  # the uncalibrated winner of the first prompt must lose
    per_prompt = torch.randn(len(prompts), len(LABELS), generator=g)
    per_prompt[torch.arange(len(prompts)), winner] += 30
    for offsets in (per_label, per_prompt):
        want = full - offsets
        for budget in (1, 4):
            got = score_labels(model, tokenizer, prompts, LABELS, batch_size=3, budget=budget,
                               offsets=offsets.numpy())
            assert got.argmax(-1).tolist() == want.argmax(-1).tolist()
            torch.testing.assert_close(got.max(-1).values, want.max(-1).values, atol=1e-4,
                                       rtol=0)
        assert (want.argmax(-1) != full.argmax(-1)).any()  # the offsets mattered
