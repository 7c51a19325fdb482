"""Reading a task's answers out of chat examples: a classification label, an NER entity list,
and the counts of each over a data set."""

from __future__ import annotations

import json
from collections import Counter

from tunesmith.data.examples import Example


def parse_entities(text: str) -> list[dict] | None:
    """A JSON list of {"text", "type"} objects, or None if `text` is not one."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, list) and all(
            isinstance(e, dict) and isinstance(e.get("text"), str) and isinstance(e.get("type"), str)
            for e in value):
        return value
    return None


def label_of(example: Example) -> str:
    return example.label if example.label is not None else example.target.strip()


def label_counts(examples: list[Example]) -> dict[str, int]:
    """Examples per label, most frequent first."""
    return dict(Counter(label_of(e) for e in examples).most_common())


def entity_type_counts(examples: list[Example]) -> dict[str, int]:
    """Entities per type, most frequent first, plus examples with none under ''."""
    counts: Counter[str] = Counter()
    for e in examples:
        entities = ([x.to_dict() for x in e.entities] if e.entities is not None
                    else parse_entities(e.target) or [])
        counts.update(x["type"] for x in entities)
        if not entities:
            counts[""] += 1
    return dict(counts.most_common())
