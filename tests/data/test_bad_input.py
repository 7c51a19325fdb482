"""Bad input: every case gets a message naming the file (and line and field where there is one),
the documented exit code, and no traceback. Run through the real command line in-process."""

import json

import pytest

from tests.conftest import ASSETS, write_lines
from tunesmith.cli import main


def run(capsys, *argv):
    code = main(["data", "check", *map(str, argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def good_lines(n=12):
    return (ASSETS / "chat_tiny.jsonl").read_text().splitlines()[:n]


def test_missing_path(tmp_path, capsys):
    code, _, err = run(capsys, tmp_path / "nope.jsonl")
    assert code == 2 and "nope.jsonl: no such file" in err


def test_folder_instead_of_file(tmp_path, capsys):
    code, _, err = run(capsys, tmp_path)
    assert code == 2 and "is a folder" in err


def test_empty_file(tmp_path, capsys):
    (tmp_path / "e.jsonl").write_text("\n\n")
    code, _, err = run(capsys, tmp_path / "e.jsonl")
    assert code == 2 and "e.jsonl: is empty" in err


def test_binary_file(tmp_path, capsys):
    (tmp_path / "b.jsonl").write_bytes(bytes(range(256)) * 40)
    code, _, err = run(capsys, tmp_path / "b.jsonl")
    assert code == 2 and "binary" in err


def test_invalid_utf8_line(tmp_path, capsys):
    lines = [line.encode() for line in good_lines()]
    lines[4] = lines[4].replace(b"bill", b"b\xe9ll")  # Latin-1 'é'
    (tmp_path / "u.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    code, out, _ = run(capsys, tmp_path / "u.jsonl")
    assert code == 1 and "u.jsonl:5: not valid UTF-8 (byte 0xe9" in out


def test_truncated_last_line(tmp_path, capsys):
    lines = good_lines()
    lines[-1] = lines[-1][:25]
    code, out, _ = run(capsys, write_lines(tmp_path / "t.jsonl", lines))
    assert code == 1 and "t.jsonl:12: invalid JSON" in out and "truncated?" in out


def test_ten_megabyte_line(tmp_path, capsys):
    big = json.dumps({"messages": [{"role": "user", "content": "x" * 10_000_000},
                                   {"role": "assistant", "content": "y"}]})
    code, out, _ = run(capsys, write_lines(tmp_path / "big.jsonl", good_lines() + [big]))
    assert code == 1 and "big.jsonl:13: line is 9.5 MiB" in out and "[line_too_long]" in out


def test_only_a_ten_megabyte_line(tmp_path, capsys):
    (tmp_path / "one.jsonl").write_text("{" + "x" * 10_000_000 + "\n")
    code, _, err = run(capsys, tmp_path / "one.jsonl")
    assert code == 2 and "one.jsonl:1:" in err


def test_numbers_where_strings_belong(tmp_path, capsys):
    lines = good_lines()
    lines[2] = json.dumps({"messages": [{"role": "user", "content": 123},
                                       {"role": "assistant", "content": "billing"}]})
    code, out, _ = run(capsys, write_lines(tmp_path / "n.jsonl", lines))
    assert code == 1 and "n.jsonl:3: messages[0].content: content must be a string, got number" in out


def test_classification_text_that_is_a_number(tmp_path, capsys):
    lines = [json.dumps({"text": f"t{i}", "label": "ab"[i % 2]}) for i in range(12)]
    lines[6] = json.dumps({"text": 7, "label": "a"})
    code, out, _ = run(capsys, write_lines(tmp_path / "c.jsonl", lines))
    assert code == 1 and "c.jsonl:7: text: 'text' must be a string, got number" in out


def test_messages_not_a_list(tmp_path, capsys):
    lines = good_lines()
    lines[0] = json.dumps({"messages": {"role": "user"}})
    code, out, _ = run(capsys, write_lines(tmp_path / "m.jsonl", lines))
    assert code == 1 and "m.jsonl:1: messages: 'messages' must be a non-empty list (object)" in out


def test_unknown_role(tmp_path, capsys):
    lines = good_lines()
    lines[7] = lines[7].replace('"user"', '"customer"')
    code, out, _ = run(capsys, write_lines(tmp_path / "r.jsonl", lines))
    assert code == 1 and "r.jsonl:8: messages[1].role: unknown role 'customer'" in out


def test_csv_without_label_column(tmp_path, capsys):
    write_lines(tmp_path / "x.csv", ["text,category", "hello,a", "bye,b"])
    code, _, err = run(capsys, tmp_path / "x.csv")
    assert code == 2
    assert "x.csv:1: field 'label': the CSV header has no 'label' column (columns: text, category)" in err
    assert "--label-field" in err


def test_conll_wrong_column_count(tmp_path, capsys):
    text = (ASSETS / "ner_tiny.conll").read_text().splitlines()
    text[2] = "in O extra"
    code, out, _ = run(capsys, write_lines(tmp_path / "w.conll", text))
    assert code == 1 and "w.conll:3: 3 columns, expected 2" in out


def test_json_mode_prints_one_error_document(tmp_path, capsys):
    code = main(["data", "check", str(tmp_path / "nope.jsonl"), "--json"])
    out, _ = capsys.readouterr()
    assert code == 2 and json.loads(out)["error"]["exit_code"] == 2


def test_unusable_prepare_input_writes_nothing(tmp_path, capsys):
    (tmp_path / "b.bin").write_bytes(b"\x00\x01" * 100)
    code = main(["data", "prepare", str(tmp_path / "b.bin"), "--task", "chat", "--out",
                 str(tmp_path / "out")])
    assert code == 2 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", ["just some words\nand more words\n", "a;b;c\n1;2;3\n"])
def test_unknown_format(tmp_path, capsys, content):
    (tmp_path / "x.dat").write_text(content)
    code, _, err = run(capsys, tmp_path / "x.dat")
    assert code == 2 and "not a supported format" in err


# ---- inputs that used to crash the readers or pass silently (issue 9, class 6) ----------------


def test_lone_surrogate_is_a_line_numbered_error(tmp_path, capsys):
    lines = good_lines()
    lines[3] = '{"messages": [{"role": "user", "content": "bad \\udc80 text"}, ' \
               '{"role": "assistant", "content": "billing"}]}'
    code, out, _ = run(capsys, write_lines(tmp_path / "s.jsonl", lines))
    assert code == 1 and "s.jsonl:4: messages[0].content: holds a lone UTF-16 surrogate" in out


def test_json_nested_ten_thousand_deep(tmp_path, capsys):
    lines = good_lines()
    lines[1] = "[" * 10_000 + "]" * 10_000
    lines[2] = '{"messages": ' + "[" * 5_000 + "]" * 5_000 + "}"
    code, out, _ = run(capsys, write_lines(tmp_path / "d.jsonl", lines))
    assert code == 1 and "d.jsonl:2: invalid JSON: nested more than 64 levels" in out
    assert "d.jsonl:3: invalid JSON: nested more than 64 levels" in out


def test_deeply_nested_ner_answer_is_not_an_entity_list(tmp_path, capsys):
    rows = [json.dumps({"messages": [{"role": "user", "content": f"text {i}"},
                                     {"role": "assistant", "content": "[]"}]}) for i in range(12)]
    rows[5] = json.dumps({"messages": [{"role": "user", "content": "x"},
                                       {"role": "assistant", "content": "[" * 5000}]})
    code, out, _ = run(capsys, write_lines(tmp_path / "n.jsonl", rows))
    assert code == 1 and "n.jsonl:6: assistant: the answer is not a JSON list" in out


def test_nan_is_not_json(tmp_path, capsys):
    lines = [json.dumps({"text": f"t{i}", "label": "ab"[i % 2]}) for i in range(12)]
    lines[4] = '{"text": "t", "label": NaN}'
    code, out, _ = run(capsys, write_lines(tmp_path / "c.jsonl", lines))
    assert code == 1 and "c.jsonl:5: invalid JSON: NaN is not valid JSON" in out


def test_duplicate_json_keys_warn(tmp_path, capsys):
    lines = [json.dumps({"text": f"t{i}", "label": "ab"[i % 2]}) for i in range(12)]
    lines[6] = '{"text": "t6", "label": "a", "label": "b"}'
    code, out, _ = run(capsys, write_lines(tmp_path / "c.jsonl", lines))
    assert code == 0 and "c.jsonl:7: label: key 'label' appears twice" in out


@pytest.mark.parametrize("encoding,name", [("utf-16", "UTF-16 (little-endian)"),
                                           ("utf-16-be", "UTF-16 (big-endian)"),
                                           ("utf-32", "UTF-32 (little-endian)")])
def test_utf16_and_utf32_files_are_named(tmp_path, capsys, encoding, name):
    (tmp_path / "w.jsonl").write_bytes("\n".join(good_lines()).encode(encoding))
    code, _, err = run(capsys, tmp_path / "w.jsonl")
    assert code == 2 and f"w.jsonl: is {name} text, not UTF-8" in err and "iconv" in err


def test_pretty_printed_json_array(tmp_path, capsys):
    rows = [json.loads(line) for line in good_lines()]
    (tmp_path / "a.jsonl").write_text(json.dumps(rows, indent=2))
    code, _, err = run(capsys, tmp_path / "a.jsonl")
    assert code == 2 and "a.jsonl:1: is one JSON array of 12 items" in err and "jq -c" in err
    (tmp_path / "o.jsonl").write_text(json.dumps(rows[0], indent=2))
    code, _, err = run(capsys, tmp_path / "o.jsonl")
    assert code == 2 and "spread over several lines" in err


def test_bio_inside_without_begin_warns(tmp_path, capsys):
    rows = [json.dumps({"tokens": ["Ann", "met", "Bob"], "tags": ["B-per", "O", "B-per"]})] * 11
    rows.append(json.dumps({"tokens": ["Ann", "met", "Bob"], "tags": ["I-per", "O", "I-per"]}))
    code, out, _ = run(capsys, write_lines(tmp_path / "n.jsonl", rows))
    assert code == 0 and "n.jsonl:12: tags[0]: tag 'I-per' at the start continues no span" in out
    assert "n.jsonl:12: tags[2]: tag 'I-per' after 'O'" in out
    conll = (ASSETS / "ner_tiny.conll").read_text().splitlines()
    first = next(i for i, line in enumerate(conll) if line.split() and line.split()[-1] == "O")
    conll[first] = conll[first].rsplit(" ", 1)[0] + " I-location"
    code, out, _ = run(capsys, write_lines(tmp_path / "n.conll", conll))
    assert code == 0 and f"n.conll:{first + 1}: tag: tag 'I-location'" in out


def test_csv_quote_that_merges_rows_is_an_error(tmp_path, capsys):
    rows = ["text,label"] + [f"row {i},{'ab'[i % 2]}" for i in range(12)]
    rows[3] = '"He said hi,a'  # the closing quote is missing here ...
    rows[4] = 'she replied",b'  # ... and the next row closes it: one merged row
    rows[7] = '"stray" quote,a'
    rows.append('"never closed,b')
    code, out, _ = run(capsys, write_lines(tmp_path / "q.csv", rows))
    assert code == 1
    assert "q.csv:4: one quoted field runs from line 4 to line 5 and holds a whole row" in out
    assert "q.csv:8: malformed CSV quoting" in out
    assert "q.csv:14: malformed CSV: a quote opened on line 14 is never closed" in out


def test_csv_quoted_line_break_is_fine(tmp_path, capsys):
    rows = ["text,label"] + [f"row {i},{'ab'[i % 2]}" for i in range(12)]
    rows[3] = '"two lines, and a comma'
    rows[4] = 'of text",a'
    code, out, _ = run(capsys, write_lines(tmp_path / "q.csv", rows))
    assert code == 0, out
