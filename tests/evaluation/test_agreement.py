"""Agreement with an incumbent and the non-inferiority test, on fixtures whose answer is known."""

import numpy as np

from tunesmith.data.taskfile import TaskSpec
from tunesmith.evaluation.agreement import agreement, non_inferiority
from tunesmith.evaluation.metrics import mean_sampler
from tunesmith.evaluation.tasks import get_task


def paired(n, both_right, only_incumbent, only_candidate):
    """Per-example correctness of an incumbent and a candidate on the same n inputs."""
    inc = np.zeros(n)
    cand = np.zeros(n)
    inc[:both_right] = cand[:both_right] = 1
    at = both_right
    inc[at:at + only_incumbent] = 1
    at += only_incumbent
    cand[at:at + only_candidate] = 1
    return mean_sampler(cand), mean_sampler(inc)


def test_one_point_worse_with_a_three_point_interval_is_not_shown_non_inferior():
    # 1,000 inputs, 60 answered differently: the candidate 1 point worse, the 95% interval of
    # the difference about 3 points wide
    cand, inc = paired(1000, 740, 35, 25)
    test = non_inferiority(cand, inc, 1000, margin=0.02, seed=0)
    assert test["diff"] == -0.01
    assert test["lower"] < -0.02 and not test["non_inferior"]


def test_half_a_point_better_with_a_tight_interval_is_non_inferior():
    cand, inc = paired(1000, 780, 5, 10)
    test = non_inferiority(cand, inc, 1000, margin=0.02, seed=0)
    assert test["diff"] == 0.005
    assert -0.02 < test["lower"] < 0.005 and test["non_inferior"]


def test_label_agreement_and_kappa():
    spec = TaskSpec("classification", ["a", "b"])
    task = get_task("classification")
    reference = ["a", "a", "b", "b"] * 25
    same = agreement(task, reference, list(reference), spec)
    assert same["value"] == 1.0 and same["kappa"] == 1.0 and same["low"] == 1.0
    flipped = agreement(task, reference, ["b" if r == "a" else "a" for r in reference], spec)
    assert flipped["value"] == 0.0 and flipped["kappa"] == -1.0
    half = agreement(task, reference, ["a"] * 100, spec)
    assert half["value"] == 0.5 and half["kappa"] == 0.0 and half["low"] < 0.5 < half["high"]
    invalid = agreement(task, reference, [None] * 100, spec)  # no label agrees with none
    assert invalid["value"] == 0.0


def test_entity_and_chat_agreement():
    ner = get_task("ner")
    ref = [[("Paris", "loc")], [("Bob", "per"), ("Rome", "loc")]]
    assert agreement(ner, ref, ref, TaskSpec("ner"))["value"] == 1.0
    assert agreement(ner, ref, [[], [("Bob", "per")]], TaskSpec("ner"))["value"] == 0.5
    chat = get_task("chat")
    assert agreement(chat, ["the cat sat"], ["the cat sat"], TaskSpec("chat"))["value"] == 1.0
