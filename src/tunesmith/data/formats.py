"""The named file formats, format detection, and `read_dataset`, the one reader for all of them.

    name            rows look like                                       task
    chat            {"messages": [{"role": ..., "content": ...}, ...]}   any
    completion      {"prompt": ..., "completion": ...}                   chat
    alpaca          {"instruction": ..., "input": ..., "output": ...}    chat
    classification {"text": ..., "label": ...}   (JSONL)                classification
    csv             text,label  header + rows (.tsv: tab-separated)      classification
    ner             {"tokens": [...], "tags": [...]}   (BIO, JSONL)      ner
    conll           token tag  per line, blank line between sentences    ner
    preference      {"input": {"messages": [...]}, "preferred_output":   chat (DPO)
                     [...], "non_preferred_output": [...]}
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from tunesmith.data import chat, classification, ner, preference
from tunesmith.data.examples import Dataset
from tunesmith.data.jsonline import INVALID, parse_line
from tunesmith.data.lines import Line, read_lines
from tunesmith.errors import UnusableInputError

FORMATS = ("chat", "completion", "alpaca", "classification", "csv", "ner", "conll",
           "preference")
FORMAT_TASK = {"completion": "chat", "alpaca": "chat", "preference": "chat", "classification": "classification",
               "csv": "classification",
               "ner": "ner", "conll": "ner"}

_SNIFF_LINES = 50
_CONLL_LINE = re.compile(r"^\S+(\s+\S+)*\s+(O|[BI]-\S+)\s*$")


def detect_format(path: Path, lines: list[Line], text_field: str = "text") -> str:
    """Guess a file's format from its extension and first lines.

    Raises:
        UnusableInputError: nothing in the file looks like a supported format.
    """
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    sample = [line for line in lines if line.text and line.text.strip()][:_SNIFF_LINES]
    if not sample:
        first = next((line for line in lines if line.text is None), None)
        raise UnusableInputError(path, "no line could be read (see the line's problem above); "
                                 "nothing to detect a format from.",
                                 line=first.number if first else None)
    if sample[0].text.lstrip().startswith(("{", "[")):
        _refuse_json_document(path, lines)
        votes: Counter[str] = Counter()
        for line in sample:
            obj, _ = parse_line(line.text, line.number)
            if isinstance(obj, dict):
                votes[_json_kind(obj, text_field)] += 1
        if votes:
            return votes.most_common(1)[0][0]
        if suffix in (".jsonl", ".json"):
            return "chat"  # every sampled line is broken: read as chat so each gets its own error
    conll_like = sum(bool(_CONLL_LINE.match(line.text)) for line in sample)
    if (suffix in (".conll", ".bio", ".iob", ".txt") or conll_like >= 0.8 * len(sample)) and \
            conll_like >= 0.5 * len(sample):
        return "conll"
    if "," in sample[0].text:
        return "csv"
    raise UnusableInputError(
        path, "not a supported format: expected JSONL (chat, prompt/completion, text/label, "
        "tokens/tags, instruction/output), CSV with a header, or CoNLL; name it with --format.", line=sample[0].number)


def _refuse_json_document(path: Path, lines: list[Line]) -> None:
    """A JSON document (an array of rows, or one object pretty-printed over many lines) is not
    JSONL; say so, and how to convert it, instead of an error on every line.

    Raises:
        UnusableInputError: the file is such a document.
    """
    content = [line for line in lines if line.text and line.text.strip()]
    first = content[0].text.strip()
    opens_alone = first in ("[", "{")
    if not (opens_alone or (first.startswith("[") and len(content) == 1)):
        return
    value, _ = parse_line("\n".join(line.text or "" for line in lines), 1)
    if isinstance(value, list) or (first == "[" and value is INVALID):
        n = f" of {len(value):,} items" if isinstance(value, list) else ""
        raise UnusableInputError(path, f"is one JSON array{n} (a .json document), not JSONL with "
                                 "one JSON object per line; convert it with "
                                 f"`jq -c '.[]' {path.name} > rows.jsonl`.", line=content[0].number)
    if opens_alone:
        raise UnusableInputError(path, "holds JSON objects spread over several lines "
                                 "(pretty-printed); JSONL needs each example on one line: "
                                 f"`jq -c . {path.name} > rows.jsonl`.", line=content[0].number)


def _json_kind(obj: dict, text_field: str) -> str:
    if "messages" in obj:
        return "chat"
    if "preferred_output" in obj or "non_preferred_output" in obj:
        return "preference"
    if "prompt" in obj and "completion" in obj:
        return "completion"
    if "instruction" in obj and "output" in obj:
        return "alpaca"
    if "tokens" in obj and ("tags" in obj or "ner_tags" in obj):
        return "ner"
    if text_field in obj or "label" in obj:
        return "classification"
    return "chat"  # unknown keys: the chat checks explain what a row should hold


def read_dataset(
    path: str | Path, fmt: str | None = None, *, text_field: str = "text",
    label_field: str = "label",
) -> Dataset:
    """Read and check every row of a data file, in any supported format.

    Row-level problems are collected in `Dataset.issues`, never raised; each bad row is left out of
    `Dataset.examples`.

    Raises:
        UnusableInputError: the file is missing, a folder, empty, binary, of no supported format,
            or (CSV) lacks the text or label column.
    """
    path = Path(path)
    lines, issues = read_lines(path)
    if fmt is not None and fmt not in FORMATS:
        raise UnusableInputError(path, f"unknown --format '{fmt}'; one of {', '.join(FORMATS)}.")
    fmt = fmt or detect_format(path, lines, text_field)
    data = Dataset(path, fmt, issues=issues)
    if fmt == "csv":
        data.examples, found, data.rows = classification.read_csv_rows(path, lines, text_field,
                                                                       label_field)
        data.issues += found
    elif fmt == "conll":
        data.examples, found, data.rows = ner.read_conll(lines)
        data.issues += found
    else:
        _read_jsonl(data, lines, text_field, label_field)
    data.rows += sum(1 for i in issues if i.code in ("invalid_utf8", "line_too_long")
                     and fmt not in ("csv", "conll"))
    data.issues.sort(key=lambda i: (i.line or 0))
    return data


def _read_jsonl(data: Dataset, lines: list[Line], text_field: str, label_field: str) -> None:
    for line in lines:
        if line.text is None or not line.text.strip():
            continue
        data.rows += 1
        obj, found = parse_line(line.text, line.number)
        data.issues += found
        if obj is INVALID:
            continue
        if data.format == "chat":
            example, found = chat.parse_chat_row(obj, line.number)
        elif data.format == "completion":
            example, found = chat.parse_completion_row(obj, line.number)
        elif data.format == "alpaca":
            example, found = chat.parse_alpaca_row(obj, line.number)
        elif data.format == "preference":
            example, found = preference.parse_preference_row(obj, line.number)
        elif data.format == "classification":
            example, found = classification.parse_classification_row(obj, line.number, text_field,
                                                                     label_field)
        else:
            example, found = ner.parse_ner_row(obj, line.number)
        data.issues += found
        if example is not None:
            data.examples.append(example)
