from collections import Counter

from tests.conftest import shared
from tunesmith.data import read_dataset
from tunesmith.data.examples import Example, Message
from tunesmith.prompting.fewshot import prompt_with_shots, select_shots


def ex(text, label):
    return Example(1, [Message("user", text), Message("assistant", label)], label=label)


def test_shots_are_stratified_and_seeded():
    train = [ex(f"t{i}", "abc"[i % 3]) for i in range(30)]
    shots = select_shots(train, 6, "classification", seed=1)
    assert Counter(s.label for s in shots) == {"a": 2, "b": 2, "c": 2}
    assert [s.prompt_key for s in shots] == [s.prompt_key for s in
                                             select_shots(train, 6, "classification", seed=1)]
    assert select_shots(train, 6, "classification", seed=2) != shots


def test_fewer_shots_than_labels_still_distinct_labels():
    data = read_dataset(shared("banking77", "task", "train.jsonl"))
    shots = select_shots(data.examples, 5, "classification", seed=0)
    assert len({s.label for s in shots}) == 5


def test_prompt_layout():
    messages = prompt_with_shots(ex("query", "?"), [ex("s1", "a"), ex("s2", "b")], "Sys")
    assert [(m["role"], m["content"]) for m in messages] == [
        ("system", "Sys"), ("user", "s1"), ("assistant", "a"), ("user", "s2"),
        ("assistant", "b"), ("user", "query")]
