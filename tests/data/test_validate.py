import json

from tests.conftest import ASSETS, write_lines
from tunesmith.data import read_dataset
from tunesmith.data.answers import entity_type_counts, label_counts
from tunesmith.data.validate import check_against_train, check_dataset, infer_task


def chat_line(user, answer, system="s"):
    return json.dumps({"messages": [{"role": "system", "content": system},
                                    {"role": "user", "content": user},
                                    {"role": "assistant", "content": answer}]})


def test_task_is_inferred_from_format_or_answers():
    assert infer_task(read_dataset(ASSETS / "chat_tiny.jsonl")) == "classification"
    assert infer_task(read_dataset(ASSETS / "ner_tiny.conll")) == "ner"
    assert infer_task(read_dataset(ASSETS / "completion_tiny.jsonl")) == "classification"


def test_long_free_answers_are_a_chat_task(tmp_path):
    lines = [chat_line(f"question {i}", f"a long and different answer number {i} here")
             for i in range(20)]
    assert infer_task(read_dataset(write_lines(tmp_path / "c.jsonl", lines))) == "chat"


def test_duplicates_and_conflicts_name_the_first_line(tmp_path):
    lines = [chat_line(f"q{i}", "yes" if i % 2 else "no") for i in range(12)]
    lines += [chat_line("q0", "no"), chat_line("q1", "no")]  # line 13 duplicate, 14 conflict
    data = read_dataset(write_lines(tmp_path / "d.jsonl", lines))
    found = {(i.code, i.line): i.message for i in check_dataset(data, "classification")}
    assert "line 1" in found[("duplicate_example", 13)]
    assert "line 2" in found[("conflicting_answers", 14)]


def test_too_few_examples_is_an_error(tmp_path):
    data = read_dataset(write_lines(tmp_path / "f.jsonl", [chat_line(f"q{i}", "a") for i in range(9)]))
    issues = check_dataset(data, "classification")
    assert [(i.code, i.severity) for i in issues if i.code == "too_few_examples"] == [
        ("too_few_examples", "error")]


def test_label_imbalance_and_rare_labels(tmp_path):
    lines = [chat_line(f"q{i}", "common") for i in range(40)] + [chat_line("r", "rare")]
    data = read_dataset(write_lines(tmp_path / "i.jsonl", lines))
    codes = {i.code for i in check_dataset(data, "classification")}
    assert {"label_imbalance", "rare_labels"} <= codes
    assert label_counts(data.examples) == {"common": 40, "rare": 1}


def test_ner_answers_must_be_entity_lists_found_in_the_text(tmp_path):
    lines = [chat_line(f"Mike went {i}", '[{"text": "Mike", "type": "person"}]') for i in range(10)]
    lines += [chat_line("Bob", '[{"text": "Alice", "type": "person"}]'), chat_line("x", "not json")]
    data = read_dataset(write_lines(tmp_path / "n.jsonl", lines))
    found = {(i.code, i.line) for i in check_dataset(data, "ner")}
    assert ("entity_not_in_text", 11) in found and ("invalid_target", 12) in found
    assert entity_type_counts(data.examples)["person"] == 11


def test_shared_examples_and_unseen_labels_against_train(tmp_path):
    train = read_dataset(write_lines(tmp_path / "t.jsonl",
                                     [chat_line(f"q{i}", "a" if i % 2 else "b") for i in range(10)]))
    val = read_dataset(write_lines(tmp_path / "v.jsonl",
                                   [chat_line("q3", "a", system="other"), chat_line("new", "c")]))
    issues = check_against_train(val, train, "classification")
    assert [(i.code, i.line, i.severity) for i in issues] == [
        ("shared_with_train", 1, "error"), ("label_not_in_train", None, "warning")]
    assert "line 4" in issues[0].message
