"""Checks of the tool-calling parts of a chat row (OpenAI's function-calling fine-tuning format).

    {"messages": [{"role": "user", "content": "Weather in Paris?"},
                  {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1",
                   "type": "function", "function": {"name": "get_weather",
                                                    "arguments": "{\\"city\\": \\"Paris\\"}"}}]},
                  {"role": "tool", "tool_call_id": "call_1", "content": "22C"},
                  {"role": "assistant", "content": "It is 22C in Paris."}],
     "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {...}}}]}

Errors (the row is unusable): `invalid_tools`, `invalid_tool_calls` (also: `arguments` must be a
string holding a JSON object, as OpenAI sends it), `invalid_tool_call_id`, `invalid_type`
(`parallel_tool_calls` not a boolean). Warnings: `unknown_tool_call_id` (a tool result that
answers no earlier call), `unknown_tool` (a call to a function that `tools` does not define).
"""

from __future__ import annotations

import json

from tunesmith.data.issues import Issue, describe_type, warning


def tool_issues(row: dict, messages: list, line: int) -> list[Issue]:
    """Every tool-related issue of one chat row (`messages` is the row's raw message list)."""
    issues, names = _tools(row.get("tools"), "tools" in row, line)
    if "parallel_tool_calls" in row and not isinstance(row["parallel_tool_calls"], bool):
        issues.append(Issue("invalid_type", "'parallel_tool_calls' must be a boolean, got "
                            f"{describe_type(row['parallel_tool_calls'])}.", line,
                            "parallel_tool_calls"))
    call_ids: set[str] = set()
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            continue  # reported by the message checks
        where = f"messages[{i}]"
        if "tool_calls" in m:
            found, ids, called = _calls(m["tool_calls"], m.get("role"), where, line)
            issues += found
            call_ids |= ids
            for j, name in called:
                if names is not None and name not in names:
                    why = ("which 'tools' does not define" if "tools" in row
                           else "but the row has no 'tools'")
                    issues.append(warning("unknown_tool", f"calls '{name}', {why}.", line,
                                          f"{where}.tool_calls[{j}].function.name"))
        if "tool_call_id" in m and not isinstance(m["tool_call_id"], str):
            got = describe_type(m["tool_call_id"])
            issues.append(Issue("invalid_tool_call_id", f"tool_call_id must be a string ({got}).",
                                line, f"{where}.tool_call_id"))
        elif m.get("role") == "tool" and m.get("tool_call_id") not in call_ids:
            what = (f"tool_call_id '{m['tool_call_id']}' matches no earlier call"
                    if "tool_call_id" in m else "the tool result has no tool_call_id")
            issues.append(warning("unknown_tool_call_id", f"{what}; templates that pair results "
                                  "with calls cannot place it.", line, f"{where}.tool_call_id"))
    return issues


def _tools(tools: object, given: bool, line: int) -> tuple[list[Issue], set[str] | None]:
    """Issues of the row's `tools`, and the function names it defines (None: not a list, so
    calls are not checked against it)."""
    if not given:
        return [], set()
    if not isinstance(tools, list):
        return [Issue("invalid_tools", f"'tools' must be a list, got {describe_type(tools)}.",
                      line, "tools")], None
    issues: list[Issue] = []
    names: set[str] = set()
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            issues.append(Issue("invalid_tools", 'a tool must be {"type": "function", "function": '
                                '{"name": ...}}.', line, where))
        elif not isinstance(fn.get("name"), str) or not fn["name"]:
            issues.append(Issue("invalid_tools", "the function needs a 'name' string.", line,
                                f"{where}.function.name"))
        elif "parameters" in fn and not isinstance(fn["parameters"], dict):
            issues.append(Issue("invalid_tools", "'parameters' must be a JSON schema object, got "
                                f"{describe_type(fn['parameters'])}.", line,
                                f"{where}.function.parameters"))
        else:
            names.add(fn["name"])
    return issues, names


def _calls(calls: object, role: object, where: str, line: int
           ) -> tuple[list[Issue], set[str], list[tuple[int, str]]]:
    """Issues of one message's `tool_calls`, the call ids it defines and (index, name) per
    well-formed call."""
    if role != "assistant":
        return [Issue("invalid_tool_calls", "only assistant messages make tool calls.", line,
                      f"{where}.tool_calls")], set(), []
    if not isinstance(calls, list):
        return [Issue("invalid_tool_calls", "tool_calls must be a list, got "
                      f"{describe_type(calls)}.", line, f"{where}.tool_calls")], set(), []
    issues: list[Issue] = []
    ids: set[str] = set()
    called: list[tuple[int, str]] = []
    for j, call in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        if isinstance(call, dict) and isinstance(call.get("id"), str):
            ids.add(call["id"])  # even from a broken call: its result is not a second problem
        problem = _call_problem(call)
        if problem:
            issues.append(Issue("invalid_tool_calls", problem[1], line, at + problem[0]))
            continue
        called.append((j, call["function"]["name"]))
    return issues, ids, called


def _call_problem(call: object) -> tuple[str, str] | None:
    """(field path suffix, message) of what is wrong with one call, or None."""
    if not isinstance(call, dict) or call.get("type") != "function":
        return "", 'a tool call must be {"type": "function", "function": {"name", "arguments"}}.'
    if "id" in call and not isinstance(call["id"], str):
        return ".id", f"the call id must be a string, got {describe_type(call['id'])}."
    fn = call.get("function")
    if not isinstance(fn, dict):
        return ".function", f"'function' must be an object, got {describe_type(fn)}."
    if not isinstance(fn.get("name"), str) or not fn["name"]:
        return ".function.name", "the call needs a function 'name' string."
    args = fn.get("arguments")
    if not isinstance(args, str):
        got = describe_type(args)
        return ".function.arguments", f"arguments must be a string of JSON (OpenAI's), got {got}."
    try:
        value = json.loads(args)
    except (ValueError, RecursionError) as e:
        return ".function.arguments", f"arguments are not valid JSON: {e}."
    if not isinstance(value, dict):
        return (".function.arguments",
                f"arguments must encode a JSON object, got {describe_type(value)}.")
    return None
