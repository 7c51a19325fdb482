"""`Issue`: one problem found in a data file, with where it is and what to do about it.

Checks return lists of issues and never stop at the first one; the command line decides the exit
code from their severities (any error: 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Issue:
    """A problem in a data file.

    Example:
        Issue("invalid_json", "Expecting ',' delimiter (column 17)", line=3)
        renders as ``train.jsonl:3: Expecting ',' delimiter (column 17) [invalid_json]``.
    """

    code: str
    """Stable machine name, e.g. `invalid_json`, `unrecognized_role` (OpenAI's names where it has one)."""
    message: str
    """What is wrong, for a person."""
    line: int | None = None
    """1-based line in the file; None for whole-file findings."""
    field: str | None = None
    """The field concerned, as a path: `messages[2].content`, `label`."""
    severity: Severity = "error"

    def render(self, path: str) -> str:
        where = path if self.line is None else f"{path}:{self.line}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message} [{self.code}]"

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(issues: list[Issue], limit: int = 5) -> str:
    """One line for a message: `2 errors: line 3: no assistant message; line 9: ...`."""
    first = "; ".join(f"line {i.line}: {i.message}" if i.line else i.message
                      for i in issues[:limit])
    return f"{len(issues)} errors: {first}"


def warning(code: str, message: str, line: int | None = None, field: str | None = None) -> Issue:
    return Issue(code, message, line, field, "warning")


def describe_type(value: object) -> str:
    """JSON's name for a Python value's type, for messages like 'expected a string, got number'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def not_an_object(obj: object, line: int) -> list[Issue]:
    """OpenAI's `data_type` check: every JSONL row is a JSON object. [] when it is one."""
    if isinstance(obj, dict):
        return []
    return [Issue("data_type", f"each line must be a JSON object, got {describe_type(obj)}.", line)]


def unknown_keys(obj: dict, allowed: set[str], line: int) -> list[Issue]:
    """A warning per key outside `allowed` (it is ignored, not an error)."""
    return [warning("unrecognized_key", f"unknown key '{key}' is ignored.", line, key)
            for key in sorted(set(obj) - allowed)]
