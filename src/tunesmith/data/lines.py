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


_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32 (little-endian)"), (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"),
         (b"\xff\xfe", "UTF-16 (little-endian)"), (b"\xfe\xff", "UTF-16 (big-endian)"))


def wide_encoding(head: bytes) -> str | None:
    """'UTF-16 (little-endian)' etc. when the first bytes of a file are UTF-16/UTF-32 text (a
    byte-order mark, or mostly-ASCII text with NUL bytes in the places those encodings put
    them); None otherwise."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    n = len(head) - len(head) % 4
    if n < 8:
        return None
    units = [head[i:i + 4] for i in range(0, n, 4)]
    patterns = {
        "UTF-32 (little-endian)": lambda u: u[0] != 0 and u[1:] == b"\x00\x00\x00",
        "UTF-32 (big-endian)": lambda u: u[:3] == b"\x00\x00\x00" and u[3] != 0,
        "UTF-16 (little-endian)": lambda u: u[0] != 0 and u[1] == 0 and u[2] != 0 and u[3] == 0,
        "UTF-16 (big-endian)": lambda u: u[0] == 0 and u[1] != 0 and u[2] == 0 and u[3] != 0,
    }
    for name, match in patterns.items():
        if sum(map(match, units)) >= 0.9 * len(units):
            return name
    return None


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
        encoding = wide_encoding(head)
        if encoding:
            raise UnusableInputError(p, f"is {encoding} text, not UTF-8; save it as UTF-8 (for "
                                     f"example `iconv -f {encoding.split()[0]} -t UTF-8 "
                                     f"{p.name} > {p.stem}-utf8{p.suffix}`).")
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
