"""Rows of OpenAI's chat fine-tuning format (and the older prompt/completion format), checked the
way OpenAI's data-preparation guide checks them.

    {"messages": [{"role": "system", "content": "..."},
                  {"role": "user", "content": "..."},
                  {"role": "assistant", "content": "...", "weight": 1}]}

The error codes are the guide's own (`data_type`, `missing_messages_list`, `message_missing_key`,
`message_unrecognized_key`, `unrecognized_role`, `missing_content`,
`example_missing_assistant_message`), plus a few of ours (`invalid_weight`, `empty_target`,
`nothing_to_learn`). Tools, tool calls and tool results are checked by `tunesmith.data.tools`.
"""

from __future__ import annotations

from tunesmith.data.examples import Example, Message
from tunesmith.data.issues import Issue, describe_type, not_an_object, unknown_keys, warning
from tunesmith.data.tools import tool_issues

ROLES = ("system", "user", "assistant", "function", "tool", "developer")
MESSAGE_KEYS = {"role", "content", "name", "function_call", "weight", "tool_calls", "tool_call_id",
                "refusal"}
ROW_KEYS = {"messages", "tools", "functions", "parallel_tool_calls", "metadata"}
COMPLETION_KEYS = {"prompt", "completion", "metadata"}


def parse_chat_row(obj: object, line: int) -> tuple[Example | None, list[Issue]]:
    """Check one chat row; return its `Example` (None if it has errors) and every issue found."""
    if bad := not_an_object(obj, line):
        return None, bad
    issues: list[Issue] = unknown_keys(obj, ROW_KEYS, line)
    raw = obj.get("messages")
    if not isinstance(raw, list) or not raw:
        got = "missing" if raw is None else ("empty" if raw == [] else describe_type(raw))
        issues.append(Issue("missing_messages_list", f"'messages' must be a non-empty list ({got}).",
                            line, "messages"))
        return None, issues
    messages: list[Message] = []
    calls = {i for i, m in enumerate(raw)
             if isinstance(m, dict) and (m.get("tool_calls") or m.get("function_call"))}
    for i, m in enumerate(raw):
        msg, found = _parse_message(m, f"messages[{i}]", line)
        issues += found
        if msg is not None:
            messages.append(msg)
    issues += tool_issues(obj, raw, line)
    if any(i.severity == "error" for i in issues):
        return None, issues
    assistants = [m for m in messages if m.role == "assistant"]
    if not assistants:
        issues.append(Issue("example_missing_assistant_message",
                            "no assistant message: there is nothing to learn.", line, "messages"))
    elif all(m.weight == 0 for m in assistants):
        issues.append(Issue("nothing_to_learn",
                            "every assistant message has weight 0: there is nothing to learn.",
                            line, "messages"))
    else:
        for i, m in enumerate(messages):
            if m.role == "assistant" and m.weight != 0 and not m.content.strip() and i not in calls:
                issues.append(Issue("empty_target", "the assistant's answer is empty.", line,
                                    f"messages[{i}].content"))
    if any(i.severity == "error" for i in issues):
        return None, issues
    return Example(line, messages, tools=obj.get("tools"),
                   parallel_tool_calls=obj.get("parallel_tool_calls")), issues


def _parse_message(m: object, where: str, line: int) -> tuple[Message | None, list[Issue]]:
    if not isinstance(m, dict):
        return None, [Issue("data_type", f"a message must be an object, got {describe_type(m)}.",
                            line, where)]
    issues: list[Issue] = []
    if "role" not in m or "content" not in m:
        missing = "role" if "role" not in m else "content"
        issues.append(Issue("message_missing_key", f"the message has no '{missing}'.", line,
                            f"{where}.{missing}"))
    for key in sorted(set(m) - MESSAGE_KEYS):
        issues.append(Issue("message_unrecognized_key", f"unknown message key '{key}'.", line,
                            f"{where}.{key}"))
    role = m.get("role")
    if "role" in m and role not in ROLES:
        shown = role if isinstance(role, str) else describe_type(role)
        issues.append(Issue("unrecognized_role",
                            f"unknown role '{shown}'; expected one of {', '.join(ROLES)}.",
                            line, f"{where}.role"))
    content = m.get("content")
    has_call = bool(m.get("tool_calls") or m.get("function_call"))
    text: str | None
    if isinstance(content, str):
        text = content
    elif isinstance(content, list) and content and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in content):
        text = "".join(p["text"] for p in content)  # content parts, text only
    elif content is None and has_call:
        text = ""
    else:
        text = None
        if "content" in m:
            what = ("a list with non-text parts" if isinstance(content, list)
                    else describe_type(content))
            issues.append(Issue("missing_content", f"content must be a string, got {what}.",
                                line, f"{where}.content"))
    weight = m.get("weight")
    if "weight" in m and (weight not in (0, 1) or isinstance(weight, bool)):
        issues.append(Issue("invalid_weight", f"weight must be 0 or 1, got {weight!r}.", line,
                            f"{where}.weight"))
    elif "weight" in m and role != "assistant":
        issues.append(warning("weight_ignored", "weight only applies to assistant messages.",
                              line, f"{where}.weight"))
    if issues and any(i.severity == "error" for i in issues):
        return None, issues
    name = m.get("name")
    if name is not None and not isinstance(name, str):
        issues.append(warning("invalid_name", f"name must be a string, got {describe_type(name)}; "
                              "it is ignored.", line, f"{where}.name"))
        name = None
    # tool_calls and tool_call_id are checked by `tool_issues`: the row is dropped if they are bad.
    return Message(str(role), text or "", weight if role == "assistant" else None,
                   tool_calls=m.get("tool_calls") or None, tool_call_id=m.get("tool_call_id"),
                   name=name), issues


def parse_completion_row(obj: object, line: int) -> tuple[Example | None, list[Issue]]:
    """Check one prompt/completion row: {"prompt": "...", "completion": "..."}."""
    if bad := not_an_object(obj, line):
        return None, bad
    issues = unknown_keys(obj, COMPLETION_KEYS, line) + _strings(obj, ("prompt", "completion"), line)
    if any(i.severity == "error" for i in issues):
        return None, issues
    if not obj["completion"].strip():
        issues.append(Issue("empty_target", "the completion is empty.", line, "completion"))
        return None, issues
    messages = [Message("user", obj["prompt"]), Message("assistant", obj["completion"])]
    return Example(line, messages), issues


ALPACA_KEYS = {"instruction", "input", "output", "id", "metadata"}


def parse_alpaca_row(obj: object, line: int) -> tuple[Example | None, list[Issue]]:
    """Check one Alpaca-style row: {"instruction": ..., "input": ... (optional), "output": ...}.
    The user message is the instruction, then a blank line and the input when there is one."""
    if bad := not_an_object(obj, line):
        return None, bad
    issues = unknown_keys(obj, ALPACA_KEYS, line) + _strings(obj, ("instruction", "output"), line,
                                                            optional=("input",))
    if any(i.severity == "error" for i in issues):
        return None, issues
    if not obj["output"].strip():
        return None, issues + [Issue("empty_target", "the output is empty.", line, "output")]
    prompt = obj["instruction"] + (f"\n\n{obj['input']}" if obj.get("input", "").strip() else "")
    return Example(line, [Message("user", prompt), Message("assistant", obj["output"])]), issues


def _strings(obj: dict, required: tuple[str, ...], line: int,
             optional: tuple[str, ...] = ()) -> list[Issue]:
    """Errors for required fields that are missing and for any of them that is not a string."""
    issues = [Issue("missing_field", f"the row has no '{key}'.", line, key)
              for key in required if key not in obj]
    issues += [Issue("invalid_type", f"'{key}' must be a string, got {describe_type(obj[key])}.",
                     line, key)
               for key in (*required, *optional) if key in obj and not isinstance(obj[key], str)]
    return issues
