import random

import pytest

from tunesmith.audit.duplicates import Text, _minhash, find_near_duplicates, jaccard, similarity
from tunesmith.audit.text import words

SENTENCES = [
    "the film is a quiet triumph of acting and restraint",
    "a clumsy script sinks every scene it touches",
    "my card was charged twice for the same coffee",
    "how long does a transfer to another bank take",
    "please close my account and send the balance home",
    "the soundtrack alone is worth the price of admission",
    "nothing in this movie makes any sense at all",
    "can i change the currency of my savings account",
]


def _texts(items, answer="x"):
    return [Text(i + 1, words(t), answer) for i, t in enumerate(items)]


def test_words_ignore_case_and_punctuation():
    assert words("Isn't it GREAT?!  Yes.") == ["isnt", "it", "great", "yes"]
    assert words("") == [] and words("...") == []


def test_similarity_is_one_minus_normalised_edit_distance():
    assert similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)  # 3 edits, 7 letters
    assert similarity("same", "same") == 1.0
    assert similarity("abcd", "wxyz") == 0.0
    assert similarity("kitten", "sitting", cutoff=0.9) == 0.0


def test_minhash_estimates_exact_jaccard():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(400)]
    for _ in range(20):
        a = rng.sample(vocab, 60)
        b = a[:rng.randrange(10, 60)] + rng.sample(vocab, rng.randrange(0, 40))
        exact = jaccard(set(a), set(b))
        assert abs(_minhash(a, 0).jaccard(_minhash(b, 0)) - exact) < 0.15


def test_changed_case_punctuation_and_one_word_are_found_across_files():
    train = _texts(SENTENCES)
    copies = ["THE FILM IS A QUIET TRIUMPH OF ACTING, AND RESTRAINT!",
              "My card was charged twice for the same tea.",
              "How long does a transfer to another bank take??"]
    found = find_near_duplicates(_texts(copies), "test.jsonl", train, "train.jsonl")
    assert [(d.line, d.other_line, d.other_file) for d in found] == \
        [(1, 1, "train.jsonl"), (2, 3, "train.jsonl"), (3, 4, "train.jsonl")]
    assert [d.exact for d in found] == [True, False, True]  # case and punctuation only: exact
    assert 0.7 < found[1].similarity < 1.0


def test_unrelated_texts_are_not_flagged():
    shuffled = [" ".join(reversed(s.split())) + " indeed" for s in SENTENCES]
    pairs = find_near_duplicates(_texts(shuffled), "a", _texts(SENTENCES), "b")
    assert pairs == []


def test_an_exact_duplicate_is_reported_once_and_copies_point_to_the_first():
    items = SENTENCES[:3] + ["The film is a quiet triumph of acting and restraint."] * 2
    found = find_near_duplicates(_texts(items), "f")
    assert [(d.line, d.other_line, d.exact) for d in found] == [(4, 1, True), (5, 1, True)]


def test_different_answers_are_marked():
    a = [Text(1, words(SENTENCES[0]), "positive")]
    b = [Text(7, words(SENTENCES[0].upper()), "negative")]
    (d,) = find_near_duplicates(a, "test", b, "train")
    assert d.other_line == 7 and not d.same_answer


def test_unicode_and_empty_texts_do_not_crash():
    items = ["", "   ", "日本語のテキストです", "日本語のテキストです!", "\u200b", "emoji 🎉🎉"]
    found = find_near_duplicates(_texts(items), "f")
    assert [(d.line, d.other_line) for d in found] == [(4, 3)]
