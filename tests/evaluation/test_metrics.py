"""Metrics against hand-computed cases."""

import numpy as np
import pytest

from tunesmith.evaluation.metrics import (
    classification_metrics,
    entity_metrics,
    exact_match,
    paired_bootstrap,
    token_f1,
)


def test_classification_by_hand():
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", None, "a"]
    m = classification_metrics(gold, pred, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(3 / 6)
    # a: tp 2, fp 1, fn 1 -> P 2/3 R 2/3 F 2/3;  b: tp 1, fp 1, fn 1 -> 1/2;  c: 0
    assert m["per_class"]["a"]["f1"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["precision"] == pytest.approx(0.5)
    assert m["per_class"]["c"]["f1"] == 0.0 and m["per_class"]["c"]["support"] == 1
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 0) / 3)
    assert m["invalid"] == 1
    assert m["confusion"]["matrix"] == [[2, 1, 0, 0], [0, 1, 0, 1], [1, 0, 0, 0]]


def test_entities_partial_matches_wrong_types_and_unparseable():
    gold = [[("Chapel Hill", "location"), ("Mike", "person")],
            [("Apple", "corporation")],
            [("Bob", "person")]]
    pred = [[("Chapel", "location"), ("Mike", "person")],   # partial span: wrong, 1 right
            [("Apple", "product")],                          # right text, wrong type
            []]                                              # unparseable output -> nothing
    m = entity_metrics(gold, pred)
    assert m["counts"] == {"tp": 1, "fp": 2, "fn": 3}
    assert m["precision"] == pytest.approx(1 / 3)
    assert m["recall"] == pytest.approx(1 / 4)
    assert m["f1"] == pytest.approx(2 * (1 / 3) * (1 / 4) / (1 / 3 + 1 / 4))
    assert m["per_type"]["person"]["recall"] == pytest.approx(1 / 2)
    assert m["per_type"]["product"]["precision"] == 0.0


def test_repeated_entities_count_as_multisets():
    m = entity_metrics([[("x", "t")]], [[("x", "t"), ("x", "t")]])
    assert m["counts"] == {"tp": 1, "fp": 1, "fn": 0}


def test_exact_match_and_token_f1():
    assert exact_match("The Cat!", "cat") == 1.0
    assert token_f1("the quick brown fox", "quick fox jumps") == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))
    assert token_f1("", "") == 1.0 and token_f1("cat", "") == 0.0


def test_paired_bootstrap_separates_a_clear_gap_and_not_a_tie():
    rng = np.random.default_rng(0)
    a = (rng.random(300) < 0.9).astype(float)
    b = (rng.random(300) < 0.5).astype(float)
    gap = paired_bootstrap(lambda idx: (a[idx].mean(), b[idx].mean()), 300)
    assert gap["low"] > 0.3 and gap["low"] < gap["diff"] < gap["high"]
    tie = paired_bootstrap(lambda idx: (a[idx].mean(), a[idx].mean()), 300)
    assert tie["low"] == tie["high"] == 0.0
