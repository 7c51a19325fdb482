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
from dataclasses import dataclass, field, replace
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
    tool_calls: list[dict] | None = None
    """An assistant's calls, as OpenAI writes them: {"id", "type": "function", "function":
    {"name", "arguments": <JSON string>}}."""
    tool_call_id: str | None = None
    """A `tool` message's answer to this call id."""
    name: str | None = None

    def to_dict(self) -> dict:
        # OpenAI writes a call-only assistant message with content null.
        content = None if self.tool_calls and not self.content else self.content
        d: dict = {"role": self.role, "content": content}
        extra = {"name": self.name, "tool_calls": self.tool_calls,
                 "tool_call_id": self.tool_call_id, "weight": self.weight}
        d.update({k: v for k, v in extra.items() if v is not None})
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
    tools: list[dict] | None = None
    """The row's function tools (OpenAI's {"type": "function", "function": {"name", ...}})."""
    parallel_tool_calls: bool | None = None

    @property
    def uses_tools(self) -> bool:
        """Whether rendering needs a template that knows tools: tools, calls or tool results."""
        return bool(self.tools) or any(m.tool_calls or m.role == "tool" for m in self.messages)

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
        last = next((m for m in reversed(self.messages) if m.role == "assistant"), None)
        calls = json.dumps(last.tool_calls, sort_keys=True) if last and last.tool_calls else ""
        return self.prompt_key + "\x1e" + self.target.strip() + calls

    def with_system(self, system: str | None) -> Example:
        """A copy whose first message is `system` (replacing one that is there). None: unchanged."""
        if not system:
            return self
        rest = [m for m in self.messages if m.role != "system"]
        return replace(self, messages=[Message("system", system), *rest])

    def with_answer(self, answer: str) -> Example:
        """A copy whose last assistant turn says `answer` (another model's, for distillation);
        the label and entities it had are dropped (they were the old answer's)."""
        messages = list(self.messages)
        last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=None)
        if last is None:
            messages.append(Message("assistant", answer))
        else:
            messages[last] = replace(messages[last], content=answer)
        return replace(self, messages=messages, label=None, entities=None)

    def to_chat(self) -> dict:
        """OpenAI's chat fine-tuning row: {"messages": [...]}, plus "tools" and
        "parallel_tool_calls" when the row had them."""
        row: dict = {"messages": [m.to_dict() for m in self.messages]}
        if self.tools is not None:
            row["tools"] = self.tools
        if self.parallel_tool_calls is not None:
            row["parallel_tool_calls"] = self.parallel_tool_calls
        return row


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
