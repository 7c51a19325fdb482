"""Tool-calling rows: kept through reading and `data prepare`, checked with line-numbered issues,
rendered for templates that know tools (loss on the calls, not on the tool results), refused
for templates that do not."""

import copy
import json

import pytest

from tests.conftest import ASSETS, write_lines
from tunesmith.cli import main
from tunesmith.data.chat import parse_chat_row
from tunesmith.data.check import check_file
from tunesmith.data.formats import read_dataset
from tunesmith.data.prepare import prepare
from tunesmith.data.render import (
    IGNORE_INDEX,
    check_tools,
    full_messages,
    supports_tools,
    tokenize_example,
)
from tunesmith.data.tokens import count_tokens
from tunesmith.errors import UsageError
from tunesmith.modeling import load_tokenizer

FIXTURE = ASSETS / "chat_tools_tiny.jsonl"
ROWS = [json.loads(x) for x in FIXTURE.read_text().splitlines()]


@pytest.fixture(scope="module")
def tools_tokenizer(tiny_tools_model_dir):
    return load_tokenizer(str(tiny_tools_model_dir))


def test_fixture_reads_clean_and_writes_back_unchanged():
    data = read_dataset(FIXTURE)
    assert data.format == "chat" and data.issues == [] and len(data.examples) == 12
    assert [e.to_chat() for e in data.examples] == ROWS
    assert all(e.uses_tools for e in data.examples)


def test_prepare_keeps_tools_and_calls(tmp_path):
    prepare(FIXTURE, "chat", tmp_path / "out", val=0.25, test=0.0)
    rows = [json.loads(x) for s in ("train", "validation")
            for x in (tmp_path / "out" / f"{s}.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    by_user = {next(m["content"] for m in r["messages"] if m["role"] == "user"): r for r in rows}
    original = ROWS[6]  # currency: parallel_tool_calls false
    got = by_user[original["messages"][0]["content"]]
    assert got["tools"] == original["tools"] and got["parallel_tool_calls"] is False
    assert got["messages"][1:] == original["messages"]  # after the added system message


def _row(**changes):
    row = copy.deepcopy(ROWS[0])
    for path, value in changes.items():
        target = row
        *parents, last = path.split(".")
        for p in parents:
            target = target[int(p)] if p.isdigit() else target[p]
        if value is KeyError:
            del target[last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return row


CALL = "messages.1.tool_calls.0"


@pytest.mark.parametrize("changes, code, field", [
    ({f"{CALL}.function.arguments": '{"city": "Paris"'}, "invalid_tool_calls",
     "messages[1].tool_calls[0].function.arguments"),
    ({f"{CALL}.function.arguments": {"city": "Paris"}}, "invalid_tool_calls",
     "messages[1].tool_calls[0].function.arguments"),
    ({f"{CALL}.function.arguments": "[1, 2]"}, "invalid_tool_calls",
     "messages[1].tool_calls[0].function.arguments"),
    ({f"{CALL}.type": "retrieval"}, "invalid_tool_calls", "messages[1].tool_calls[0]"),
    ({f"{CALL}.function.name": 3}, "invalid_tool_calls",
     "messages[1].tool_calls[0].function.name"),
    ({f"{CALL}.function": KeyError}, "invalid_tool_calls", "messages[1].tool_calls[0].function"),
    ({"messages.1.tool_calls": {"id": "x"}}, "invalid_tool_calls", "messages[1].tool_calls"),
    ({"messages.0.tool_calls": []}, "invalid_tool_calls", "messages[0].tool_calls"),
    ({"messages.2.tool_call_id": 5}, "invalid_tool_call_id", "messages[2].tool_call_id"),
    ({"tools": {"type": "function"}}, "invalid_tools", "tools"),
    ({"tools.0.type": "code_interpreter"}, "invalid_tools", "tools[0]"),
    ({"tools.1.function.name": ""}, "invalid_tools", "tools[1].function.name"),
    ({"tools.0.function.parameters": "city"}, "invalid_tools", "tools[0].function.parameters"),
    ({"parallel_tool_calls": "no"}, "invalid_type", "parallel_tool_calls"),
])
def test_each_error_names_line_code_and_field(changes, code, field):
    example, issues = parse_chat_row(_row(**changes), 7)
    errors = [(i.code, i.field, i.line) for i in issues if i.severity == "error"]
    assert example is None and errors == [(code, field, 7)]


@pytest.mark.parametrize("changes, code, field", [
    ({"messages.2.tool_call_id": "call_zzz"}, "unknown_tool_call_id", "messages[2].tool_call_id"),
    ({"messages.2.tool_call_id": KeyError}, "unknown_tool_call_id", "messages[2].tool_call_id"),
    ({f"{CALL}.function.name": "get_time"}, "unknown_tool",
     "messages[1].tool_calls[0].function.name"),
    ({"tools": KeyError}, "unknown_tool", "messages[1].tool_calls[0].function.name"),
])
def test_warnings_keep_the_example(changes, code, field):
    example, issues = parse_chat_row(_row(**changes), 7)
    assert example is not None
    assert [(i.code, i.field, i.severity) for i in issues] == [(code, field, "warning")]


def test_unparseable_arguments_are_reported_with_the_file_line(tmp_path):
    bad = _row(**{f"{CALL}.function.arguments": "{city: Paris}"})
    path = write_lines(tmp_path / "t.jsonl", [json.dumps(ROWS[1]), "", json.dumps(bad)])
    data = read_dataset(path)
    [issue] = data.issues
    assert (issue.line, issue.code) == (3, "invalid_tool_calls")
    assert issue.render(str(path)).startswith(
        f"{path}:3: messages[1].tool_calls[0].function.arguments: arguments are not valid JSON")


def test_template_messages_parse_arguments():
    example = read_dataset(FIXTURE).examples[0]
    assert full_messages(example)[1:3] == [
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "id": "call_w0",
         "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "22C", "tool_call_id": "call_w0"}]


def test_supports_tools(tokenizer, tools_tokenizer):
    assert not supports_tools(tokenizer)  # SmolLM2's ChatML
    assert supports_tools(tools_tokenizer)


def test_loss_covers_calls_and_answers_not_tool_results(tools_tokenizer):
    example = read_dataset(FIXTURE).examples[0]
    item = tokenize_example(tools_tokenizer, example, 4096)
    decode = tools_tokenizer.decode
    trained = decode([t for t in item.labels if t != IGNORE_INDEX])
    assert trained == ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
                       "</tool_call><|im_end|>\nIt is 22C in Paris right now.<|im_end|>\n")
    untrained = decode([t for t, lab in zip(item.input_ids, item.labels) if lab == IGNORE_INDEX])
    assert "<tool_response>\n22C\n</tool_response>" in untrained
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in untrained


def test_tools_count_as_prompt_tokens(tools_tokenizer):
    example = read_dataset(FIXTURE).examples[11]  # offers a tool, answers without it
    with_tools = count_tokens([example], tools_tokenizer)
    example.tools = None
    without = count_tokens([example], tools_tokenizer)
    assert with_tools.completion == without.completion
    assert with_tools.total[0] > without.total[0] + 20


def test_check_tools_refuses_a_template_without_tools(tokenizer, tools_tokenizer):
    examples = read_dataset(FIXTURE).examples
    with pytest.raises(UsageError, match=r"model smol's chat template cannot render tool calls "
                       r"\(line 1 of train.jsonl uses tools\).*Qwen2.5-Instruct"):
        check_tools(tokenizer, examples, "smol", "train.jsonl")
    check_tools(tools_tokenizer, examples, "hermes")  # renders them: no error
    plain = read_dataset(ASSETS / "chat_tiny.jsonl").examples
    check_tools(tokenizer, plain, "smol")  # no tools: any template will do


def test_check_file_reports_each_line_the_template_cannot_render(tokenizer, tools_tokenizer):
    report = check_file(FIXTURE, tokenizer=tokenizer, model="smol")
    unsupported = [i for i in report.errors if i.code == "tools_unsupported"]
    assert [i.line for i in unsupported] == list(range(1, 13)) and not report.ok
    assert "model smol's chat template cannot render tool calls" in unsupported[0].message
    assert check_file(FIXTURE, tokenizer=tools_tokenizer, model="hermes").errors == [
        i for i in check_file(FIXTURE).errors]  # only the usual ones (too few examples)


def test_data_check_cli_exits_1_on_a_model_without_tools(tiny_model_dir, tiny_tools_model_dir,
                                                         capsys):
    assert main(["data", "check", str(FIXTURE), "--model", str(tiny_model_dir), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert {i["code"] for i in doc["issues"] if i["line"] == 3} == {"tools_unsupported"}
    main(["data", "check", str(FIXTURE), "--model", str(tiny_tools_model_dir), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert not any(i["code"] == "tools_unsupported" for i in doc["issues"])
