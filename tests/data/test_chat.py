"""OpenAI's data-preparation checks, one by one, with the guide's error codes."""

import pytest

from tunesmith.data.chat import parse_chat_row, parse_completion_row


def codes(obj):
    example, issues = parse_chat_row(obj, 7)
    assert all(i.line == 7 for i in issues)
    return example, sorted(i.code for i in issues if i.severity == "error")


def ok_row(**assistant):
    return {"messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello", **assistant}]}


def test_valid_row_gives_an_example():
    example, errors = codes(ok_row())
    assert errors == [] and example.target == "hello"


@pytest.mark.parametrize("obj, code", [
    ([1, 2], "data_type"),
    ("text", "data_type"),
    ({}, "missing_messages_list"),
    ({"messages": "hi"}, "missing_messages_list"),
    ({"messages": []}, "missing_messages_list"),
    ({"messages": [{"role": "user"}]}, "message_missing_key"),
    ({"messages": [{"content": "x"}]}, "message_missing_key"),
    ({"messages": [{"role": "user", "content": "x", "mood": "happy"},
                   {"role": "assistant", "content": "y"}]}, "message_unrecognized_key"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "unrecognized_role"),
    ({"messages": [{"role": "user", "content": 42}]}, "missing_content"),
    ({"messages": [{"role": "user", "content": "x"}]}, "example_missing_assistant_message"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "  "}]},
     "empty_target"),
    ({"messages": [{"role": "user", "content": "x"},
                   {"role": "assistant", "content": "y", "weight": 0}]}, "nothing_to_learn"),
    ({"messages": [{"role": "user", "content": "x"},
                   {"role": "assistant", "content": "y", "weight": 0.5}]}, "invalid_weight"),
    ({"messages": ["hello"]}, "data_type"),
])
def test_each_openai_check(obj, code):
    example, errors = codes(obj)
    assert example is None
    assert code in errors


def test_every_problem_of_a_row_is_reported_not_only_the_first():
    obj = {"messages": [{"role": "robot", "content": 5, "extra": 1}]}
    _, errors = codes(obj)
    assert errors == ["message_unrecognized_key", "missing_content", "unrecognized_role"]


def test_issues_name_the_field_path():
    _, issues = parse_chat_row({"messages": [{"role": "user", "content": "x"},
                                             {"role": "assistant", "content": 3}]}, 1)
    assert issues[0].field == "messages[1].content"
    assert "got number" in issues[0].message


def test_weight_zero_keeps_the_message_out_of_the_loss():
    obj = {"messages": [{"role": "user", "content": "a"},
                        {"role": "assistant", "content": "draft", "weight": 0},
                        {"role": "user", "content": "again"},
                        {"role": "assistant", "content": "final", "weight": 1}]}
    example, errors = codes(obj)
    assert errors == []
    assert [m.weight for m in example.messages] == [None, 0, None, 1]


def test_text_content_parts_and_tool_calls_are_accepted():
    obj = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                     {"type": "text", "text": "b"}]},
                        {"role": "assistant", "content": None, "tool_calls": [{
                            "id": "1", "type": "function",
                            "function": {"name": "answer", "arguments": "{}"}}]},
                        {"role": "tool", "content": "42", "tool_call_id": "1"},
                        {"role": "assistant", "content": "It is 42."}]}
    example, errors = codes(obj)
    assert errors == [] and example.messages[0].content == "ab"


def test_unknown_top_level_key_is_only_a_warning():
    row = ok_row()
    row["source"] = "crm"
    example, issues = parse_chat_row(row, 1)
    assert example is not None
    assert [(i.code, i.severity) for i in issues] == [("unrecognized_key", "warning")]


def test_completion_rows():
    example, issues = parse_completion_row({"prompt": "2+2=", "completion": "4"}, 1)
    assert issues == [] and example.target == "4"
    example, issues = parse_completion_row({"prompt": 1, "completion": ""}, 2)
    assert example is None and [i.code for i in issues] == ["invalid_type"]
