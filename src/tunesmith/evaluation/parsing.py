"""Reading a model's free-text answer as a label or an entity list, leniently but honestly:
what cannot be read counts as invalid (and wrong)."""

from __future__ import annotations

import ast
import json

from tunesmith.evaluation.metrics import Entity


def parse_label(text: str, labels: list[str]) -> str | None:
    """The label a generated answer names: exact match after trimming whitespace, quotes and
    final punctuation, case-insensitively; None when it names none or is ambiguous."""
    cleaned = text.strip().strip("\"'`").rstrip(".!").strip()
    exact = [label for label in labels if label == cleaned]
    if exact:
        return exact[0]
    folded = [label for label in labels if label.lower() == cleaned.lower()]
    return folded[0] if len(folded) == 1 else None


def parse_entities(text: str) -> list[Entity] | None:
    """The entities of a generated JSON list `[{"text": ..., "type": ...}, ...]`.

    Accepts surrounding prose or code fences and Python-style quotes; drops list items that are
    not {text, type} objects. Returns None when no list can be read at all.
    """
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end < start:
        return None
    chunk = text[start:end + 1]
    value = None
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(chunk)
            break
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    if not isinstance(value, list):
        return None
    return [(str(x["text"]), str(x["type"])) for x in value
            if isinstance(x, dict) and isinstance(x.get("text"), str)
            and isinstance(x.get("type"), str)]
