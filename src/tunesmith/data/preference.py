"""Rows of OpenAI's preference (DPO) fine-tuning format, checked line by line.

    {"input": {"messages": [{"role": "user", "content": "Say hi"}], "tools": [...]},
     "preferred_output": [{"role": "assistant", "content": "Hello! How can I help?"}],
     "non_preferred_output": [{"role": "assistant", "content": "hi"}]}

A row becomes a `PreferenceExample`: a chat example whose answer is the preferred output (so
every check, the token counter and `data prepare` treat it as chat data) plus the rejected
answer. Error codes: `missing_field`, `invalid_type`, `missing_messages_list`, the chat
checks' message codes, `invalid_output` (not exactly one assistant message), `empty_output`,
`identical_outputs`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunesmith.data.chat import _parse_message
from tunesmith.data.examples import Example, Message
from tunesmith.data.issues import Issue, describe_type, not_an_object, unknown_keys

ROW_KEYS = {"input", "preferred_output", "non_preferred_output", "metadata"}
INPUT_KEYS = {"messages", "tools", "parallel_tool_calls"}
OUTPUTS = ("preferred_output", "non_preferred_output")


@dataclass
class PreferenceExample(Example):
    """A prompt with a preferred answer (the last assistant message) and a rejected one."""

    rejected: Message | None = None

    def rejected_example(self) -> Example:
        """The same prompt (and tools) answered with the rejected output."""
        return Example(self.line, [*self.messages[:-1], self.rejected], tools=self.tools,
                       parallel_tool_calls=self.parallel_tool_calls)

    def to_chat(self) -> dict:
        """The row in OpenAI's preference format (what `data prepare` writes back)."""
        *prompt, chosen = self.messages
        given = {"messages": [m.to_dict() for m in prompt]}
        if self.tools is not None:
            given["tools"] = self.tools
        if self.parallel_tool_calls is not None:
            given["parallel_tool_calls"] = self.parallel_tool_calls
        return {"input": given, "preferred_output": [chosen.to_dict()],
                "non_preferred_output": [self.rejected.to_dict()]}


def parse_preference_row(obj: object, line: int) -> tuple[PreferenceExample | None, list[Issue]]:
    """Check one preference row; return its example (None if it has errors) and its issues."""
    if bad := not_an_object(obj, line):
        return None, bad
    issues = unknown_keys(obj, ROW_KEYS, line)
    issues += [Issue("missing_field", f"the row has no '{key}'.", line, key)
               for key in ("input", *OUTPUTS) if key not in obj]
    if any(i.severity == "error" for i in issues):
        return None, issues
    prompt, found = _input_messages(obj["input"], line)
    issues += found
    outputs: list[Message | None] = []
    for key in OUTPUTS:
        message, found = _output(obj[key], key, line)
        issues += found
        outputs.append(message)
    if any(i.severity == "error" for i in issues):
        return None, issues
    chosen, rejected = outputs
    if chosen.content.strip() == rejected.content.strip():
        issues.append(Issue("identical_outputs", "the preferred and non-preferred outputs are the "
                            "same: there is no preference to learn.", line, "non_preferred_output"))
        return None, issues
    given = obj["input"]
    tools = given.get("tools") if isinstance(given.get("tools"), list) and given["tools"] else None
    parallel = given.get("parallel_tool_calls")
    return PreferenceExample(line, [*prompt, chosen], tools=tools,
                             parallel_tool_calls=parallel if isinstance(parallel, bool) else None,
                             rejected=rejected), issues


def _input_messages(raw: object, line: int) -> tuple[list[Message], list[Issue]]:
    if not isinstance(raw, dict):
        return [], [Issue("invalid_type", f"'input' must be an object holding 'messages', got "
                          f"{describe_type(raw)}.", line, "input")]
    issues = [Issue("unknown_key", f"unknown key 'input.{key}' (ignored).", line, f"input.{key}",
                    severity="warning") for key in sorted(set(raw) - INPUT_KEYS)]
    messages = raw.get("messages")
    if not isinstance(messages, list) or not messages:
        got = "missing" if messages is None else ("empty" if messages == [] else
                                                  describe_type(messages))
        return [], issues + [Issue("missing_messages_list", "'input.messages' must be a non-empty "
                                   f"list ({got}).", line, "input.messages")]
    parsed = []
    for i, m in enumerate(messages):
        message, found = _parse_message(m, f"input.messages[{i}]", line)
        issues += found
        if message is not None:
            parsed.append(message)
    if parsed and parsed[-1].role == "assistant":
        issues.append(Issue("invalid_input", "'input.messages' ends with an assistant message; "
                            "the outputs are the answers to it, so it should end with the user's "
                            "turn.", line, f"input.messages[{len(messages) - 1}]"))
    return parsed, issues


def _output(raw: object, key: str, line: int) -> tuple[Message | None, list[Issue]]:
    if not isinstance(raw, list) or len(raw) != 1:
        got = describe_type(raw) if not isinstance(raw, list) else f"{len(raw)} messages"
        return None, [Issue("invalid_output", f"'{key}' must be a list of exactly one assistant "
                            f"message, got {got}.", line, key)]
    message, issues = _parse_message(raw[0], f"{key}[0]", line)
    if message is None:
        return None, issues
    if message.role != "assistant":
        return None, issues + [Issue("invalid_output", f"'{key}' must be an assistant message, "
                                     f"not {message.role}.", line, f"{key}[0].role")]
    if not message.content.strip() and not getattr(message, "tool_calls", None):
        return None, issues + [Issue("empty_output", f"'{key}' is empty.", line,
                                     f"{key}[0].content")]
    message.weight = None  # weights belong to chat rows; both outputs are always compared
    return message, issues
