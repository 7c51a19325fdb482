"""Label scoring over the prefix tree equals scoring each label with its own forward pass."""

import torch

from tunesmith.evaluation.scoring import LabelTree, answer_tokens, score_labels
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


def test_tree_scores_equal_separate_passes(tokenizer):
    model = build_tiny_model(len(tokenizer), seed=3).eval()
    labels = ["card_arrival", "card_linking", "card_about_to_expire", "refund", "Refund"]
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
               for text in ("where is my card", "I want my money back now please", "hi")]
    scores = score_labels(model, tokenizer, prompts, labels, batch_size=2)  # padding + 2 batches
    for i, prompt in enumerate(prompts):
        for j, label in enumerate(labels):
            assert abs(scores[i, j].item() - naive(model, tokenizer, prompt, label)) < 1e-4
