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
    # keeping them keeps csv's line counter equal to the file's line numbers.
    reader = csv.reader((line.text or "" for line in lines), delimiter=delimiter)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as e:
        raise UnusableInputError(path, f"no CSV header row ({e}).", line=1) from e
    header = [h.strip() for h in header]
    for name, flag in ((text_field, "--text-field"), (label_field, "--label-field")):
        if name not in header:
            raise UnusableInputError(
                path, f"the CSV header has no '{name}' column (columns: {', '.join(header)}); "
                f"name the right one with {flag}.", line=1, field=name)
    ti, li = header.index(text_field), header.index(label_field)
    examples: list[Example] = []
    issues: list[Issue] = []
    rows = 0
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            issues.append(Issue("invalid_csv", f"malformed CSV: {e}.", start))
            continue
        if not row or not any(cell.strip() for cell in row):
            continue
        rows += 1
        if len(row) != len(header):
            issues.append(Issue("wrong_column_count",
                                f"{len(row)} columns, the header has {len(header)}.", start))
            continue
        example, found = _check_fields(row[ti], row[li], start, text_field, label_field)
        issues += found
        if example is not None:
            examples.append(example)
    return examples, issues, rows
