import random

import numpy as np

from tunesmith.audit.labels import find_label_errors

TOPICS = {
    "sport": "match goal team coach league score player season stadium referee",
    "money": "bank loan interest card payment account salary budget invoice price",
    "food": "recipe pasta sauce oven garlic bread dinner flavour spice kitchen",
}


def _corpus(n_per_label=60, flips=15, seed=0):
    rng = random.Random(seed)
    texts, labels = [], []
    for label, vocab in TOPICS.items():
        for _ in range(n_per_label):
            texts.append(" ".join(rng.choices(vocab.split(), k=8)))
            labels.append(label)
    flipped = rng.sample(range(len(labels)), flips)
    for i in flipped:
        labels[i] = rng.choice([k for k in TOPICS if k != labels[i]])
    return texts, labels, sorted(flipped)


def test_injected_label_flips_are_found():
    texts, labels, flipped = _corpus()
    lines = list(range(1, len(texts) + 1))
    errors, method = find_label_errors(texts, labels, lines)
    found = {e.line - 1 for e in errors}
    assert found <= set(flipped) and len(found) >= 0.8 * len(flipped)  # confident learning
    assert method["estimated_errors"] == len(errors)  # under-counts a little on small sets
    assert [e.given_probability for e in errors] == sorted(e.given_probability for e in errors)
    for e in errors:
        assert e.suggested != e.label and e.confidence > 0.5 > e.given_probability
    assert method["folds"] == 5 and method["out_of_fold_accuracy"] > 0.9


def test_embeddings_are_averaged_in_and_recorded():
    texts, labels, flipped = _corpus(seed=1)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(TOPICS), 16)) * 2
    truth = [i // 60 for i in range(len(texts))]  # _corpus writes the topics in order
    emb = np.stack([centres[t] + rng.normal(size=16) for t in truth])
    errors, method = find_label_errors(texts, labels, list(range(1, len(texts) + 1)),
                                       embeddings=[emb])
    assert len(method["classifiers"]) == 2
    found = {e.line - 1 for e in errors}
    assert found <= set(flipped) and len(found) >= 0.8 * len(flipped)


def test_rare_labels_are_not_judged_and_one_label_is_no_question():
    texts, labels, _ = _corpus(flips=0)
    texts.append("a lonely example")
    labels.append("singleton")
    errors, method = find_label_errors(texts, labels, list(range(1, len(texts) + 1)))
    assert method["not_judged_labels"] == ["singleton"] and errors == []
    assert find_label_errors(["a", "b"], ["x", "x"], [1, 2])[0] == []


def test_empty_and_unicode_texts_do_not_crash():
    texts = ["", "🎉", "日本語", "…"] * 6
    labels = ["a", "b"] * 12
    errors, method = find_label_errors(texts, labels, list(range(1, 25)))
    assert method["judged"] == 24 and all(e.label in ("a", "b") for e in errors)
