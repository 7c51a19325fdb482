"""NER spans typed unlike the same surface string elsewhere in the data ("Paris" tagged
`location` 14 times and `person` once: the once is probably wrong)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from tunesmith.audit.text import words


@dataclass
class EntityConflict:
    line: int
    text: str
    type: str
    usual_type: str
    counts: dict[str, int]
    """How often this surface string carries each type in the file."""

    def to_dict(self) -> dict:
        return {"line": self.line, "text": self.text, "type": self.type,
                "usual_type": self.usual_type, "counts": self.counts}


def find_entity_conflicts(spans: list[tuple[int, str, str]]) -> list[EntityConflict]:
    """`spans`: (line, text, type) for every entity in the file. A span is flagged when the same
    text (case and punctuation ignored) carries another type strictly more often; ties are not
    flagged (nothing says which side is wrong), most lopsided first."""
    by_text: dict[str, Counter[str]] = defaultdict(Counter)
    for _, text, kind in spans:
        by_text[" ".join(words(text))][kind] += 1
    conflicts = []
    for line, text, kind in spans:
        counts = by_text[" ".join(words(text))]
        usual, n = counts.most_common(1)[0]
        if len(counts) > 1 and usual != kind and n > counts[kind]:
            conflicts.append(EntityConflict(line, text, kind, usual, dict(counts)))
    conflicts.sort(key=lambda c: (-c.counts[c.usual_type] / sum(c.counts.values()), c.line))
    return conflicts
