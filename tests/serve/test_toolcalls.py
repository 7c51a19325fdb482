"""Parsing Hermes-style `<tool_call>` blocks out of generated text into OpenAI tool calls."""

import json

from tunesmith.serve.toolcalls import chat_message, parse_tool_calls, stream_delta

WEATHER = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def test_one_well_formed_call():
    content, [call] = parse_tool_calls(WEATHER)
    assert content is None
    assert call["type"] == "function" and call["id"].startswith("call_") and len(call["id"]) > 12
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_several_calls_in_order_with_text_around_them():
    text = ("Let me check both.\n" + WEATHER + "\n"
            + WEATHER.replace("Paris", "Oslo").replace('"get_weather"', '"get_time"') + "\n")
    content, calls = parse_tool_calls(text)
    assert content == "Let me check both."
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"city": "Oslo"})]
    assert calls[0]["id"] != calls[1]["id"]


def test_arguments_given_as_a_string_are_kept_as_written():
    _, [call] = parse_tool_calls('<tool_call>{"name": "f", "arguments": "{\\"x\\": 1}"}</tool_call>')
    assert call["function"]["arguments"] == '{"x": 1}'
    _, [call] = parse_tool_calls('<tool_call>{"name": "g"}</tool_call>')
    assert call["function"]["arguments"] == "{}"


def test_malformed_blocks_stay_text():
    bad = '<tool_call>\n{"name": "get_weather", "arguments": {city: Paris}}\n</tool_call>'
    assert parse_tool_calls(bad) == (bad, [])
    nameless = '<tool_call>{"arguments": {}}</tool_call>'
    assert parse_tool_calls(nameless) == (nameless, [])
    cut = 'Sure. <tool_call>\n{"name": "get_weather", "argu'  # hit the token limit
    assert parse_tool_calls(cut) == (cut, [])
    content, calls = parse_tool_calls(bad + WEATHER)  # one good, one bad: the bad one is text
    assert content == bad and len(calls) == 1


def test_plain_text_is_unchanged():
    assert parse_tool_calls("  just words \n") == ("  just words \n", [])


def test_chat_message_and_stream_delta():
    message, called = chat_message(WEATHER, parse=True)
    assert called and message["content"] is None and message["role"] == "assistant"
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"
    message, called = chat_message(WEATHER, parse=False)  # tool_choice "none": text as text
    assert not called and message == {"role": "assistant", "content": WEATHER, "refusal": None}
    delta, called = stream_delta("On it." + WEATHER)
    assert called and delta["content"] == "On it."
    assert [(c["index"], c["function"]["name"]) for c in delta["tool_calls"]] == [
        (0, "get_weather")]
    assert stream_delta("hello") == ({"content": "hello"}, False)


NAMES = frozenset({"get_weather", "get_time"})


def test_llama_and_mistral_json_calls_of_offered_tools():
    llama = '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}'
    content, [call] = parse_tool_calls(llama, NAMES)
    assert content is None and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert parse_tool_calls(llama.removeprefix("<|python_tag|>"), NAMES)[1]  # tag optional
    mistral = ('[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Oslo"}}, '
               '{"name": "get_time", "arguments": {"zone": "CET"}}]')
    content, calls = parse_tool_calls(mistral, NAMES)
    assert content is None and [c["function"]["name"] for c in calls] == ["get_weather",
                                                                          "get_time"]
    message, called = chat_message(mistral.removeprefix("[TOOL_CALLS] "), True, NAMES)
    assert called and len(message["tool_calls"]) == 2


def test_json_that_is_not_a_call_of_an_offered_tool_stays_the_answer():
    for text in ('{"name": "send_email", "parameters": {}}',  # not offered
                 '{"answer": "positive"}',  # JSON, but no call
                 '[{"name": "get_weather", "arguments": {}}, {"name": "rm_rf"}]',  # one unknown
                 'The call would be {"name": "get_weather", "parameters": {}}'):  # not alone
        assert parse_tool_calls(text, NAMES) == (text, [])
    # without the offered names (tool_choice none, or no tools) nothing is read as JSON calls
    plain = '{"name": "get_weather", "parameters": {"city": "Paris"}}'
    assert parse_tool_calls(plain) == (plain, [])
    assert chat_message(plain, False, NAMES)[1] is False
