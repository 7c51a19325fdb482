"""Reader fuzzing through the real command line (in-process): whatever the bytes or JSON values,
`data check` and `data prepare` exit 0, 1 or 2 with a message naming the file, never a
traceback, and `prepare` never writes outside its --out folder.

The default run keeps to ~150 cases per property (seconds); `make test-slow` runs 2,000 each
(TUNESMITH_FUZZ_EXAMPLES sets the number)."""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunesmith.cli import main

EXAMPLES = int(os.environ.get("TUNESMITH_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="CI" in os.environ,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# Any code point, lone surrogates and control characters included.
text = st.text(st.characters(codec=None, categories=["L", "N", "P", "S", "Z", "Cc", "Cs"]),
               max_size=12)
keys = st.sampled_from(["messages", "role", "content", "weight", "text", "label", "tokens",
                        "tags", "prompt", "completion", "instruction", "output", "type"]) | text
scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
           | text | st.sampled_from(["user", "assistant", "system", "O", "B-PER", "I-PER"]))
values = st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                      | st.dictionaries(keys, children, max_size=5), max_leaves=24)


def _row(value) -> str:
    """A JSONL line; NaN/Infinity come out as the bare words Python writes (invalid JSON)."""
    return json.dumps(value, ensure_ascii=True)


def _check(capsys, path, *extra) -> int:
    code = main(["data", "check", str(path), *extra])
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), code
    assert "Traceback" not in out + err and "internal error" not in err, err
    if code == 2:
        assert path.name in err  # the message names the file
    if code == 1:
        assert f"{path.name}:" in out or f"{path.name}: " in err
    return code


def _prepare(capsys, tmp_path, path, task) -> int:
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    out_dir = tmp_path / "out"
    code = main(["data", "prepare", str(path), "--task", task, "--out", str(out_dir), "--force"])
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), code
    assert "Traceback" not in out + err and "internal error" not in err, err
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    changed = {p for p in after if before.get(p) != after[p]}
    assert all(p == out_dir or out_dir in p.parents for p in changed), changed
    return code


@FUZZ
@given(data=st.binary(max_size=1500),
       suffix=st.sampled_from([".jsonl", ".csv", ".tsv", ".conll", ".txt", ".json"]))
def test_check_and_prepare_arbitrary_bytes(tmp_path, capsys, data, suffix):
    path = tmp_path / f"in{suffix}"
    path.write_bytes(data)
    _check(capsys, path)
    _prepare(capsys, tmp_path, path, "classification")


@FUZZ
@given(rows=st.lists(values, min_size=1, max_size=12),
       fmt=st.sampled_from([None, "chat", "completion", "alpaca", "classification", "ner"]),
       task=st.sampled_from(["classification", "ner", "chat"]))
def test_check_and_prepare_arbitrary_json_rows(tmp_path, capsys, rows, fmt, task):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(_row(r) + "\n" for r in rows))
    _check(capsys, path, *(["--format", fmt] if fmt else []))
    _prepare(capsys, tmp_path, path, task)


def _chat_row(user, answer, role):
    return {"messages": [{"role": role, "content": user}, {"role": "assistant", "content": answer}]}


@FUZZ
@given(pairs=st.lists(st.tuples(text, text, st.sampled_from(["user", "system", "tool",
                                                             "developer", "function"])),
                      min_size=10, max_size=16))
def test_check_and_prepare_chat_rows_with_any_text(tmp_path, capsys, pairs):
    """Well-formed rows whose strings hold anything (surrogates, control characters): the
    tokenizer and the chat template see them."""
    path = tmp_path / "in.jsonl"
    path.write_text("".join(_row(_chat_row(*p)) + "\n" for p in pairs))
    _check(capsys, path)
    _prepare(capsys, tmp_path, path, "chat")
