import json
from collections import Counter

import pytest

from tests.conftest import ASSETS, shared, write_lines
from tunesmith.data import read_dataset
from tunesmith.data.prepare import prepare, split_examples
from tunesmith.data.taskfile import read_task
from tunesmith.errors import InvalidDataError, UsageError


def read_split(out, name):
    return [json.loads(line) for line in (out / f"{name}.jsonl").read_text().splitlines()]


def test_prepare_classification_writes_three_splits_and_task_json(tmp_path):
    result = prepare(ASSETS / "classification_tiny.csv", "classification", tmp_path / "out",
                     val=0.25, test=0.25)
    spec = read_task(tmp_path / "out")
    assert spec.task == "classification" and spec.labels == ["app", "billing", "outage"]
    assert "app, billing, outage" in spec.system
    assert result.counts == {"train": 6, "validation": 3, "test": 3}
    rows = read_split(tmp_path / "out", "test")
    assert [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant"]
    assert Counter(r["messages"][2]["content"] for r in rows) == {"app": 1, "billing": 1, "outage": 1}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "task.json", "test.jsonl", "train.jsonl", "validation.jsonl"]  # no temp files left


def test_split_is_stratified_seeded_and_disjoint():
    data = read_dataset(shared("banking77", "task", "train.jsonl"))
    a = split_examples(data.examples, 0.1, 0.1, seed=3, stratify=True)
    b = split_examples(data.examples, 0.1, 0.1, seed=3, stratify=True)
    assert [e.line for e in a["test"]] == [e.line for e in b["test"]]
    lines = [{e.line for e in a[s]} for s in ("train", "validation", "test")]
    assert not (lines[0] & lines[1] or lines[0] & lines[2] or lines[1] & lines[2])
    assert sum(map(len, lines)) == 2000
    train_labels = Counter(e.label for e in a["train"])
    test_labels = Counter(e.label for e in a["test"])
    assert set(train_labels) == set(Counter(e.label for e in data.examples))
    for label, n in test_labels.items():  # each label keeps its share, within rounding
        assert abs(n / len(a["test"]) - train_labels[label] / len(a["train"])) < 0.01


def test_prepare_ner_from_conll_keeps_entity_lists(tmp_path):
    prepare(ASSETS / "ner_tiny.conll", "ner", tmp_path, val=0.0, test=0.25)
    spec = read_task(tmp_path)
    assert spec.labels == ["corporation", "location", "person"]
    rows = read_split(tmp_path, "train") + read_split(tmp_path, "test")
    answers = [json.loads(r["messages"][-1]["content"]) for r in rows]
    assert {"text": "Chapel Hill", "type": "location"} in [x for a in answers for x in a]
    assert (tmp_path / "validation.jsonl").read_text() == ""


def test_duplicates_are_dropped_so_no_input_sits_in_two_splits(tmp_path):
    lines = [json.dumps({"text": f"t{i % 10}", "label": "ab"[i % 2]}) for i in range(30)]
    lines.append(json.dumps({"text": "t0", "label": "b"}))  # conflicting repeat
    result = prepare(write_lines(tmp_path / "in.jsonl", lines), "classification", tmp_path / "o")
    assert result.dropped_duplicates == 20 and result.dropped_conflicts == 1
    assert sum(result.counts.values()) == 10


def test_errors_stop_prepare_unless_skipped(tmp_path):
    lines = [json.dumps({"text": f"t{i}", "label": "ab"[i % 2]}) for i in range(12)] + ["{oops"]
    path = write_lines(tmp_path / "in.jsonl", lines)
    with pytest.raises(InvalidDataError) as err:
        prepare(path, "classification", tmp_path / "o")
    assert [(i.code, i.line) for i in err.value.issues] == [("invalid_json", 13)]
    assert not (tmp_path / "o").exists()
    result = prepare(path, "classification", tmp_path / "o", skip_invalid=True)
    assert result.skipped_invalid == 1 and sum(result.counts.values()) == 12


def test_wrong_task_for_the_format_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="classification task"):
        prepare(ASSETS / "classification_tiny.jsonl", "ner", tmp_path)
    with pytest.raises(UsageError, match="--val"):
        prepare(ASSETS / "classification_tiny.jsonl", "classification", tmp_path, val=0.6, test=0.5)


def test_given_system_replaces_the_files_own(tmp_path):
    prepare(ASSETS / "chat_tiny.jsonl", "classification", tmp_path, system="Route it.")
    rows = read_split(tmp_path, "train")
    assert {r["messages"][0]["content"] for r in rows} == {"Route it."}
    assert all(len(r["messages"]) == 3 for r in rows)
