import pytest

from tunesmith.data.examples import Entity
from tunesmith.data.lines import Line
from tunesmith.data.ner import bio_to_entities, parse_ner_row, read_conll


@pytest.mark.parametrize("tags, expected", [
    (["B-per", "I-per", "O"], [Entity("a b", "per")]),
    (["B-per", "B-per", "O"], [Entity("a", "per"), Entity("b", "per")]),
    (["I-loc", "I-loc", "O"], [Entity("a b", "loc")]),  # I- without B- starts a span
    (["B-per", "I-loc", "O"], [Entity("a", "per"), Entity("b", "loc")]),  # type change splits
    (["O", "O", "B-org"], [Entity("c", "org")]),  # a span at the very end
    (["O", "O", "O"], []),
])
def test_bio_to_entities(tags, expected):
    assert bio_to_entities(["a", "b", "c"], tags) == expected


def test_ner_row_checks():
    assert parse_ner_row({"tokens": ["a"], "tags": ["O", "O"]}, 1)[1][0].code == "tags_length_mismatch"
    assert parse_ner_row({"tokens": ["a"], "tags": ["PER"]}, 1)[1][0].code == "invalid_tag"
    assert parse_ner_row({"tokens": "a b", "tags": ["O"]}, 1)[1][0].code == "invalid_type"
    assert parse_ner_row({"tokens": [], "tags": []}, 1)[1][0].code == "empty_input"
    example, issues = parse_ner_row({"tokens": ["x"], "ner_tags": ["B-a"]}, 1)
    assert issues == [] and example.entities == [Entity("x", "a")]


def test_conll_reports_wrong_column_counts_by_line_and_keeps_other_sentences():
    lines = [Line(i + 1, t) for i, t in enumerate(
        ["-DOCSTART- O", "", "a O", "b B-x", "", "c O extra", "d O", "", "e B-y", ""])]
    examples, issues, sentences = read_conll(lines)
    assert sentences == 3
    assert [(i.code, i.line) for i in issues] == [("wrong_column_count", 6)]
    assert [e.line for e in examples] == [3, 9]
    assert examples[1].entities == [Entity("e", "y")]
