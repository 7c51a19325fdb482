"""Classification rows: `{"text": ..., "label": ...}` as JSONL, or a CSV with a header row.

Field names are flags (`--text-field`, `--label-field`). A label given as a number or boolean
(SST-2's 0/1) is kept as its string; a text that is not a string is an error.
"""

from __future__ import annotations

import csv
from pathlib import Path

from tunesmith.data.examples import Example, Message
from tunesmith.data.issues import Issue, describe_type, not_an_object
from tunesmith.data.lines import Line
from tunesmith.errors import UnusableInputError


def make_example(text: str, label: str, line: int) -> Example:
    return Example(line, [Message("user", text), Message("assistant", label)], label=label)


def parse_classification_row(
    obj: object, line: int, text_field: str = "text", label_field: str = "label"
) -> tuple[Example | None, list[Issue]]:
    """Check one JSONL row of a classification file."""
    if bad := not_an_object(obj, line):
        return None, bad
    return _check_fields(obj.get(text_field, _MISSING), obj.get(label_field, _MISSING), line,
                         text_field, label_field)


_MISSING = object()


def _check_fields(
    text: object, label: object, line: int, text_field: str, label_field: str
) -> tuple[Example | None, list[Issue]]:
    issues: list[Issue] = []
    if text is _MISSING:
        issues.append(Issue("missing_field", f"the row has no '{text_field}'.", line, text_field))
    elif not isinstance(text, str):
        issues.append(Issue("invalid_type", f"'{text_field}' must be a string, got "
                            f"{describe_type(text)}.", line, text_field))
    elif not text.strip():
        issues.append(Issue("empty_input", f"'{text_field}' is empty.", line, text_field))
    if label is _MISSING:
        issues.append(Issue("missing_field", f"the row has no '{label_field}'.", line, label_field))
    elif isinstance(label, (bool, int)) or (isinstance(label, float) and label.is_integer()):
        label = str(int(label)) if not isinstance(label, bool) else str(label).lower()
    elif not isinstance(label, str):
        issues.append(Issue("invalid_type", f"'{label_field}' must be a string or an integer, got "
                            f"{describe_type(label)}.", line, label_field))
    if isinstance(label, str) and not label.strip():
        issues.append(Issue("empty_target", f"'{label_field}' is empty.", line, label_field))
    if issues:
        return None, issues
    assert isinstance(text, str) and isinstance(label, str)
    return make_example(text, label.strip(), line), []


def read_csv_rows(
    path: Path, lines: list[Line], text_field: str = "text", label_field: str = "label"
) -> tuple[list[Example], list[Issue], int]:
    """Parse a CSV (comma, or tab for .tsv) with a header row naming the text and label columns.

    Returns:
        (examples, issues, number of data rows).

    Raises:
        UnusableInputError: the header lacks the text or label column.
    """
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    # Undecodable lines become empty rows: their issue is already recorded by read_lines, and
    # keeping them keeps csv's line counter equal to the file's line numbers. Strict: a stray
    # quote is an error, not silently repaired into some other text.
    reader = csv.reader(((line.text or "") + "\n" for line in lines), delimiter=delimiter,
                        strict=True)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as e:
        raise UnusableInputError(path, f"no CSV header row ({e}).", line=1) from e
    header = [h.strip() for h in header]
    for name, flag in ((text_field, "--text-field"), (label_field, "--label-field")):
        if name not in header:
            raise UnusableInputError(
                path, f"the CSV header has no '{name}' column (columns: {_columns(header)}); "
                f"name the right one with {flag}.", line=1, field=name)
    ti, li = header.index(text_field), header.index(label_field)
    examples: list[Example] = []
    issues: list[Issue] = []
    spanning: list[tuple[int, int, list[str]]] = []  # rows with a quoted line break
    rows = 0
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            issues.append(Issue("invalid_csv", _csv_error(e, start, reader.line_num), start))
            continue
        if not row or not any(cell.strip() for cell in row):
            continue
        rows += 1
        if len(row) != len(header):
            issues.append(Issue("wrong_column_count",
                                f"{len(row)} columns, the header has {len(header)}.", start))
            continue
        if reader.line_num > start:
            spanning.append((start, reader.line_num, row))
        example, found = _check_fields(row[ti], row[li], start, text_field, label_field)
        issues += found
        if example is not None:
            examples.append(example)
    merged = _merged_rows(spanning, {e.label for e in examples}, delimiter, len(header))
    issues += merged
    bad = {i.line for i in merged}
    return [e for e in examples if e.line not in bad], issues, rows


def _columns(header: list[str]) -> str:
    shown = [h if len(h) <= 30 else h[:29] + "…" for h in header[:10]]
    return ", ".join(shown) + (f", ... ({len(header)} in all)" if len(header) > 10 else "")


def _csv_error(e: csv.Error, start: int, end: int) -> str:
    text = str(e)
    if "unexpected end of data" in text or "EOF" in text:
        return (f"malformed CSV: a quote opened on line {start} is never closed (everything to "
                "the end of the file would be one field).")
    if "expected after" in text:
        return ("malformed CSV quoting: a quoted field must end with its closing quote right "
                'before the delimiter; write "" for a quote inside quoted text.')
    return f"malformed CSV: {text}."


def _merged_rows(spanning: list[tuple[int, int, list[str]]], labels: set[str | None],
                 delimiter: str, width: int) -> list[Issue]:
    """Rows whose quoted field spans lines and holds, on one of those lines, what reads as a
    whole row ending in a known label: an unbalanced quote merged rows into one."""
    issues = []
    for start, end, row in spanning:
        for cell in row:
            pieces = cell.split("\n")[:-1] if "\n" in cell else []
            whole = next((p for p in pieces if p.count(delimiter) >= width - 1
                          and p.rsplit(delimiter, 1)[-1].strip() in labels), None)
            if whole is not None:
                shown = whole if len(whole) <= 40 else whole[:39] + "…"
                issues.append(Issue(
                    "merged_rows", f"one quoted field runs from line {start} to line {end} and "
                    f"holds a whole row ({shown!r}): an unbalanced quote merged rows; close the "
                    "quote where the text ends.", start))
                break
    return issues
