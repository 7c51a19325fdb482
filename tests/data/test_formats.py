import pytest

from tests.conftest import ASSETS, write_lines
from tunesmith.data import read_dataset
from tunesmith.data.examples import Entity


@pytest.mark.parametrize("name, fmt", [
    ("chat_tiny.jsonl", "chat"), ("classification_tiny.jsonl", "classification"),
    ("classification_tiny.csv", "csv"), ("completion_tiny.jsonl", "completion"),
    ("ner_tiny.jsonl", "ner"), ("ner_tiny.conll", "conll"),
])
def test_every_format_is_detected_and_read(name, fmt):
    data = read_dataset(ASSETS / name)
    assert data.format == fmt
    assert len(data.examples) == 12
    assert data.rows == 12
    assert data.issues == []


def test_classification_becomes_user_and_assistant_messages():
    data = read_dataset(ASSETS / "classification_tiny.jsonl")
    e = data.examples[0]
    assert [(m.role, m.content) for m in e.messages] == [
        ("user", "my bill doubled this month"), ("assistant", "billing")]
    assert e.label == "billing" and e.line == 1


def test_csv_and_jsonl_give_the_same_examples():
    a = read_dataset(ASSETS / "classification_tiny.jsonl").examples
    b = read_dataset(ASSETS / "classification_tiny.csv").examples
    assert [x.key for x in a] == [x.key for x in b]
    assert b[0].line == 2  # the header is line 1


def test_conll_and_jsonl_ner_agree_and_spans_are_joined():
    a = read_dataset(ASSETS / "ner_tiny.jsonl").examples
    b = read_dataset(ASSETS / "ner_tiny.conll").examples
    assert [x.key for x in a] == [x.key for x in b]
    assert a[0].entities == [Entity("Mike", "person"), Entity("Chapel Hill", "location")]
    assert a[0].target == '[{"text": "Mike", "type": "person"}, {"text": "Chapel Hill", "type": "location"}]'
    assert b[1].line == 8  # sentence 2 starts after 6 token lines and a blank one


def test_custom_field_names(tmp_path):
    path = write_lines(tmp_path / "x.jsonl", ['{"sentence": "good film", "sentiment": 1}'] * 2)
    data = read_dataset(path, "classification", text_field="sentence", label_field="sentiment")
    assert data.examples[0].label == "1"  # integer labels are kept as their string


def test_alpaca_rows_join_instruction_and_input(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", [
        '{"instruction": "Translate to French.", "input": "cat", "output": "chat"}',
        '{"instruction": "Say hi.", "input": "", "output": "hi"}'])
    data = read_dataset(path)
    assert data.format == "alpaca"
    assert data.examples[0].messages[0].content == "Translate to French.\n\ncat"
    assert data.examples[1].messages[0].content == "Say hi."


def test_format_override_applies_that_formats_checks(tmp_path):
    path = write_lines(tmp_path / "x.jsonl", ['{"text": "a", "label": "b"}'])
    data = read_dataset(path, "chat")
    assert [i.code for i in data.errors] == ["missing_messages_list"]


def test_shared_sets_read_without_issues():
    from tests.conftest import shared

    for name in ("sst2", "banking77", "wnut17", "instruct_selfinstruct_seed"):
        data = read_dataset(shared(name, "chat", "train.jsonl"))
        assert data.errors == [], name
        assert len(data.examples) == data.rows
