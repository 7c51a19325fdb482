"""Tool calls in generated text: Hermes-style blocks (Qwen2.5, Hermes, the tools templates the
tests use) turned into OpenAI's `message.tool_calls`.

    I will check.<tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>
      -> content "I will check.", tool_calls [{"id": "call_...", "type": "function", "function":
         {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}], finish_reason "tool_calls"

A block whose JSON does not parse, or lacks a name, stays in the content as text: the client
sees what the model wrote rather than a call it did not make. An unterminated block (the answer
hit its token limit) is text too.

Without Hermes blocks, an answer that is nothing but JSON calls of offered tools is read as
calls too: Llama 3.1-3.3's `{"name": "get_weather", "parameters": {...}}` (after an optional
`<|python_tag|>`) and Mistral's `[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]` (the
control token itself is usually gone when decoded). Only names among the request's tools count,
so an answer that merely is JSON stays an answer.

`tool_choice` "required" or a named function: the opening of a call is written into the answer
before the model continues it (prefilled after the prompt), `<tool_call>\n{"name": "` or, for a
named function, `<tool_call>\n{"name": "get_weather", "arguments": `. The model then writes a
call (and, for "required", chooses the function), but its JSON is not grammar-constrained: a
call that does not parse stays text, as above.

Streaming with tools is buffered: the text of a choice is held back until it ends, then sent as
one chunk with its content and/or its complete `tool_calls` deltas (OpenAI streams the arguments
in pieces; one piece is a valid stream too). Without tools, streaming is unchanged.
"""

from __future__ import annotations

import json
import re
import secrets

_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def parse_tool_calls(text: str, names: frozenset[str] | None = None
                     ) -> tuple[str | None, list[dict]]:
    """Split generated text into (content, OpenAI tool calls). `names`: the offered tools'
    names, which also lets a whole-answer JSON call (Llama 3.x, Mistral) count.

    Returns:
        The text outside well-formed blocks, stripped (None when nothing is left and there are
        calls), and the calls in the order written, each with a fresh `call_...` id and its
        arguments as a JSON string.
    """
    if names and "<tool_call>" not in text:
        calls = _json_calls(text, names)
        if calls:
            return None, calls
    calls: list[dict] = []
    kept: list[str] = []
    end = 0
    for match in _BLOCK.finditer(text):
        call = _call(match.group(1))
        if call is None:
            continue  # malformed: stays in the text
        kept.append(text[end:match.start()])
        end = match.end()
        calls.append(call)
    kept.append(text[end:])
    content = "".join(kept)
    if calls:
        content = content.strip()
        return content or None, calls
    return content, []


_JSON_CALL_PREFIXES = ("<|python_tag|>", "[TOOL_CALLS]")


def _json_calls(text: str, names: frozenset[str]) -> list[dict]:
    """The calls of an answer that is only a JSON call or a list of them, all of offered tools;
    else none."""
    body = text.strip()
    for prefix in _JSON_CALL_PREFIXES:
        body = body.removeprefix(prefix).strip()
    if not body.startswith(("{", "[")):
        return []
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return []
    items = value if isinstance(value, list) else [value]
    calls = [_value_call(v) for v in items]
    if not calls or any(c is None or c["function"]["name"] not in names for c in calls):
        return []
    return calls


def _call(body: str) -> dict | None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return _value_call(value)


def _value_call(value) -> dict | None:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"]:
        return None
    args = value.get("arguments", value.get("parameters", {}))
    if not isinstance(args, str):
        args = json.dumps(args, ensure_ascii=False)
    return {"id": f"call_{secrets.token_hex(12)}", "type": "function",
            "function": {"name": value["name"], "arguments": args}}


def chat_message(text: str, parse: bool, names: frozenset[str] | None = None
                 ) -> tuple[dict, bool]:
    """The response `message` for generated `text`, and whether it holds tool calls. `parse`:
    look for calls (the request offered tools, named `names`, and did not say tool_choice
    "none")."""
    content, calls = parse_tool_calls(text, names) if parse else (text, [])
    message: dict = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return message, bool(calls)


def stream_delta(text: str, names: frozenset[str] | None = None) -> tuple[dict, bool]:
    """The one delta of a buffered streamed choice, and whether it holds tool calls."""
    content, calls = parse_tool_calls(text, names)
    delta: dict = {"content": content} if content else {}
    if calls:
        delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(calls)]
    return delta, bool(calls)


def forced_call_prefix(tool_choice, tools: list[dict]) -> str:
    """The text that starts the answer for `tool_choice` ("" for none/auto).

    Raises:
        ValueError: a named function that is not among `tools`.
    """
    if tool_choice in (None, "auto", "none"):
        return ""
    if tool_choice == "required":
        return '<tool_call>\n{"name": "'
    name = tool_choice.function.get("name") if hasattr(tool_choice, "function") else None
    offered = {t.get("function", {}).get("name") for t in tools}
    if not isinstance(name, str) or name not in offered:
        raise ValueError(f"tool_choice names function {name!r}, which is not among the tools "
                         f"({', '.join(sorted(n for n in offered if n))}).")
    return '<tool_call>\n{"name": ' + json.dumps(name) + ', "arguments": '
