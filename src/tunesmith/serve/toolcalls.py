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

Streaming with tools is buffered: the text of a choice is held back until it ends, then sent as
one chunk with its content and/or its complete `tool_calls` deltas (OpenAI streams the arguments
in pieces; one piece is a valid stream too). Without tools, streaming is unchanged.
"""

from __future__ import annotations

import json
import re
import secrets

_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def parse_tool_calls(text: str) -> tuple[str | None, list[dict]]:
    """Split generated text into (content, OpenAI tool calls).

    Returns:
        The text outside well-formed blocks, stripped (None when nothing is left and there are
        calls), and the calls in the order written, each with a fresh `call_...` id and its
        arguments as a JSON string.
    """
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


def _call(body: str) -> dict | None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"]:
        return None
    args = value.get("arguments", value.get("parameters", {}))
    if not isinstance(args, str):
        args = json.dumps(args, ensure_ascii=False)
    return {"id": f"call_{secrets.token_hex(12)}", "type": "function",
            "function": {"name": value["name"], "arguments": args}}


def chat_message(text: str, parse: bool) -> tuple[dict, bool]:
    """The response `message` for generated `text`, and whether it holds tool calls. `parse`:
    look for calls (the request offered tools and did not say tool_choice "none")."""
    content, calls = parse_tool_calls(text) if parse else (text, [])
    message: dict = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return message, bool(calls)


def stream_delta(text: str) -> tuple[dict, bool]:
    """The one delta of a buffered streamed choice, and whether it holds tool calls."""
    content, calls = parse_tool_calls(text)
    delta: dict = {"content": content} if content else {}
    if calls:
        delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(calls)]
    return delta, bool(calls)
