"""Reading a text file line by line without ever crashing on what is inside it.

Per-line problems (invalid UTF-8, an absurdly long line) become `Issue`s and the reading goes on;
only a file that cannot be used at all (missing, a folder, empty, binary) raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunesmith.data.issues import Issue
from tunesmith.errors import UnusableInputError

MAX_LINE_BYTES = 4 * 2**20
"""A line longer than this (4 MiB) is refused unparsed: no trainable example is that long, and
parsing and tokenizing it would cost seconds for nothing."""

_BINARY_SNIFF_BYTES = 8192


@dataclass
class Line:
    number: int
    """1-based."""
    text: str | None
    """Decoded text without the line ending; None when the line was unusable (see the issues)."""


def check_path(path: str | Path) -> Path:
    """Raise `UnusableInputError` unless `path` is an existing, readable, regular file."""
    p = Path(path)
    if not p.exists():
        raise UnusableInputError(p, "no such file.")
    if p.is_dir():
        raise UnusableInputError(p, "is a folder; give a data file (JSONL, CSV or CoNLL).")
    if not p.is_file():
        raise UnusableInputError(p, "is not a regular file.")
    return p


def read_lines(path: str | Path) -> tuple[list[Line], list[Issue]]:
    """All lines of a text file, blank ones included (CoNLL needs them).

    Raises:
        UnusableInputError: missing path, folder, unreadable, empty or binary file.
    """
    p = check_path(path)
    try:
        f = p.open("rb")
    except OSError as e:
        raise UnusableInputError(p, f"cannot be read: {e.strerror}.") from e
    lines: list[Line] = []
    issues: list[Issue] = []
    bad_utf8 = 0
    with f:
        head = f.read(_BINARY_SNIFF_BYTES)
        if b"\x00" in head:
            raise UnusableInputError(p, "is a binary file (it contains NUL bytes), not text data.")
        f.seek(0)
        for number, raw in enumerate(f, 1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte-order mark, as Excel writes it
            if len(raw) > MAX_LINE_BYTES:
                issues.append(Issue(
                    "line_too_long",
                    f"line is {len(raw) / 2**20:.1f} MiB; lines over {MAX_LINE_BYTES // 2**20} MiB "
                    "are not read (no trainable example is that long).", number))
                lines.append(Line(number, None))
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad_utf8 += 1
                issues.append(Issue(
                    "invalid_utf8",
                    f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                    "save the file as UTF-8.", number))
                lines.append(Line(number, None))
                continue
            lines.append(Line(number, text.rstrip("\r\n")))
    if not any(line.text is None or line.text.strip() for line in lines):
        raise UnusableInputError(p, "is empty: no data lines.")
    if bad_utf8 and bad_utf8 >= 0.5 * len(lines) and bad_utf8 >= 3:
        raise UnusableInputError(
            p, f"{bad_utf8} of {len(lines)} lines are not UTF-8: a binary file, or text in another "
            "encoding; save it as UTF-8.")
    return lines, issues
