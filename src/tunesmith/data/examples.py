"""The in-memory shape of a data set, whatever file format it came from.

Every reader turns its rows into `Example`s holding chat messages, so the checks, the token counter
and the preparation code see one shape:

    {"text": "refund pls", "label": "billing"}   (classification JSONL, line 7)
      -> Example(line=7, messages=[user "refund pls", assistant "billing"], label="billing")
    Mike  B-person / vick O                      (CoNLL, lines 1-2)
      -> Example(line=1, messages=[user "Mike vick", assistant '[{"text": "Mike", "type": "person"}]'],
                 entities=[Entity("Mike", "person")])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tunesmith.data.issues import Issue

Task = Literal["classification", "ner", "chat"]
TASKS: tuple[Task, ...] = ("classification", "ner", "chat")


@dataclass
class Message:
    role: str
    content: str
    weight: int | None = None
    """OpenAI's per-message weight: 0 excludes an assistant message from the loss. None = default."""

    def to_dict(self) -> dict:
        d: dict = {"role": self.role, "content": self.content}
        if self.weight is not None:
            d["weight"] = self.weight
        return d


@dataclass(frozen=True)
class Entity:
    text: str
    type: str

    def to_dict(self) -> dict:
        return {"text": self.text, "type": self.type}


@dataclass
class Example:
    line: int
    """1-based line where the example starts in its file."""
    messages: list[Message]
    label: str | None = None
    """Classification target, when the source format has one."""
    entities: list[Entity] | None = None
    """NER target, when the source format has one."""

    @property
    def target(self) -> str:
        """The last assistant message: what a model is trained to answer."""
        for m in reversed(self.messages):
            if m.role == "assistant":
                return m.content
        return ""

    @property
    def prompt_key(self) -> str:
        """The input side (every non-assistant message before the last answer), for finding
        duplicates and examples shared between splits. System messages are left out: the same
        text under two instructions is still the same example."""
        last = max((i for i, m in enumerate(self.messages) if m.role == "assistant"), default=0)
        return "\x1f".join(
            m.content.strip() for m in self.messages[:last] if m.role not in ("system", "assistant")
        )

    @property
    def key(self) -> str:
        """Input and target together: two examples with the same key are duplicates."""
        return self.prompt_key + "\x1e" + self.target.strip()

    def with_system(self, system: str | None) -> Example:
        """A copy whose first message is `system` (replacing one that is there). None: unchanged."""
        if not system:
            return self
        rest = [m for m in self.messages if m.role != "system"]
        return Example(self.line, [Message("system", system), *rest], self.label, self.entities)

    def to_chat(self) -> dict:
        """OpenAI's chat fine-tuning row: {"messages": [...]}."""
        return {"messages": [m.to_dict() for m in self.messages]}


def entities_json(entities: list[Entity]) -> str:
    """The assistant reply for NER: a JSON list of {"text", "type"} objects, in text order."""
    return json.dumps([e.to_dict() for e in entities], ensure_ascii=False)


@dataclass
class Dataset:
    """A file's examples plus every issue found while reading it."""

    path: Path
    format: str
    examples: list[Example] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    rows: int = 0
    """Rows read (JSONL/CSV lines with content, CoNLL sentences), valid or not."""

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]
