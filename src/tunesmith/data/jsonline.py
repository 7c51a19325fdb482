"""Parsing one line of a JSONL file into a value plus the problems found in it, never raising.

What the standard `json.loads` lets through or crashes on, and what we make of it:

    '{"a": 1, "a": 2}'         -> value {"a": 2}, warning duplicate_key (field a: the last wins)
    '{"text": "\\udc80"}'       -> error invalid_unicode (field text: a lone UTF-16 surrogate,
                                  which no UTF-8 file or tokenizer can hold)
    '[[[[ ... 10,000 deep'     -> error invalid_json (nested too deeply), not a RecursionError
    '{"label": NaN}'           -> error invalid_json (NaN/Infinity are not JSON)
"""

from __future__ import annotations

import json
from typing import Any

from tunesmith.data.issues import Issue, warning

MAX_DEPTH = 64
"""Deeper nesting is refused: no training row needs more than a few levels, and the standard
parser (and code that walks the value) recurses once per level."""

INVALID = object()
"""The value of a line that could not be parsed."""


class _Constant(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _Constant(f"{name} is not valid JSON (write a number or a string)")


def parse_line(text: str, line: int) -> tuple[object, list[Issue]]:
    """Parse one JSONL line.

    Returns:
        (value, issues): value is `INVALID` when the line has an error that makes it unusable.
    """
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    if _depth_over(text, MAX_DEPTH):
        return INVALID, [Issue("invalid_json", f"invalid JSON: nested more than {MAX_DEPTH} "
                               "levels deep.", line)]
    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_constant=_refuse_constant)
    except _Constant as e:
        return INVALID, [Issue("invalid_json", f"invalid JSON: {e}.", line)]
    except RecursionError:
        return INVALID, [Issue("invalid_json", "invalid JSON: nested too deeply.", line)]
    except ValueError as e:
        return INVALID, [Issue("invalid_json", _json_error(e, text), line)]
    issues = [warning("duplicate_key", f"key '{_short(k)}' appears twice in one object; the last "
                      "value is used.", line, _short(k)) for k in dict.fromkeys(duplicates)]
    bad = surrogate_path(value)
    if bad is not None:
        issues.append(Issue("invalid_unicode", "holds a lone UTF-16 surrogate (\\ud800-\\udfff "
                            "escape without its pair): not valid Unicode text.", line, bad or None))
        return INVALID, issues
    return value, issues


def surrogate_path(value: object) -> str | None:
    """The path (`messages[0].content`) of the first string, key included, that holds a lone
    surrogate; '' for the value itself; None when there is none. Walks without recursion."""
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if _has_surrogate(item):
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                where = f"{path}.{key}" if path else str(key)
                if _has_surrogate(key):
                    return path or "(a key)"
                stack.append((child, where))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _depth_over(text: str, limit: int) -> bool:
    """Whether brackets nest deeper than `limit` (outside strings). One pass, no recursion."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _json_error(e: ValueError, text: str) -> str:
    if isinstance(e, json.JSONDecodeError):
        ends_early = e.pos >= len(text.rstrip()) - 1 or e.msg.startswith("Unterminated")
        hint = "; the line ends early: truncated?" if ends_early else ""
        return f"invalid JSON: {e.msg} (column {e.colno}){hint}."
    return f"invalid JSON: {e}."
