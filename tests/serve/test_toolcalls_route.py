"""`tools` on /v1/chat/completions through FastAPI's TestClient: the prompt offers the tools and
renders earlier calls and results, generated `<tool_call>` blocks come back as `tool_calls`
(plain and streamed), and what cannot be served is a 400 naming the parameter."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tunesmith.generation import Step
from tunesmith.jobs.sqlite import SQLiteStore
from tunesmith.modeling import load_tokenizer
from tunesmith.serve.app import create_app
from tunesmith.serve.deps import ServeSettings
from tunesmith.serve.engine import Engine

AUTH = {"Authorization": "Bearer k1"}
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
HISTORY = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
     "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "22C"},
    {"role": "assistant", "content": "It is 22C in Paris."},
    {"role": "user", "content": "And in Oslo?"}]


class ScriptedEngine(Engine):
    """The real engine's rendering, but every row "generates" `answer` (a random tiny model
    never writes a tool call); the prompts it was given are kept."""

    def __init__(self, answer: str) -> None:
        super().__init__(start=False)
        self.answer, self.prompts = answer, []

    def submit(self, row) -> None:
        self.prompts.append(row.prompt)
        ids = load_tokenizer(row.key)(self.answer, add_special_tokens=False)["input_ids"]
        for token in ids:
            row.deliver(Step(0, token, -0.5, [], False))
        row.deliver(Step(0, 0, -0.1, [], True, eos=True))


def _client(tmp_path, models, engine) -> TestClient:
    settings = ServeSettings(tmp_path, {"k1": "alpha"}, 10_000, [str(m) for m in models])
    return TestClient(create_app(settings, SQLiteStore(tmp_path / "db"), engine))


@pytest.fixture
def scripted(tmp_path, tiny_model_dir, tiny_tools_model_dir):
    engine = ScriptedEngine("Checking. " + CALL)
    with _client(tmp_path, [tiny_tools_model_dir, tiny_model_dir], engine) as client:
        yield client, engine


def _chat(client, model, **kw):
    body = {"model": str(model), "messages": HISTORY, "tools": TOOLS, **kw}
    return client.post("/v1/chat/completions", headers=AUTH, json=body)


def test_generated_call_becomes_tool_calls(scripted, tiny_tools_model_dir):
    client, engine = scripted
    r = _chat(client, tiny_tools_model_dir)
    assert r.status_code == 200, r.text
    [choice] = r.json()["choices"]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] == "Checking."
    [call] = message["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}
    prompt = load_tokenizer(str(tiny_tools_model_dir)).decode(engine.prompts[-1])
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in prompt
    assert '{"name": "get_weather", "arguments": {"city": "Paris"}}' in prompt  # earlier call
    assert "<tool_response>\n22C\n</tool_response>" in prompt
    assert prompt.endswith("And in Oslo?<|im_end|>\n<|im_start|>assistant\n")


def test_streamed_call_is_sent_whole_at_the_end(scripted, tiny_tools_model_dir):
    client, _ = scripted
    body = {"model": str(tiny_tools_model_dir), "messages": HISTORY, "tools": TOOLS,
            "stream": True}
    with client.stream("POST", "/v1/chat/completions", headers=AUTH, json=body) as r:
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    deltas = [json.loads(line[6:])["choices"][0] for line in lines[:-1]]
    assert [d["delta"].get("role") for d in deltas] == ["assistant", None, None]
    assert deltas[1]["delta"]["content"] == "Checking."
    [call] = deltas[1]["delta"]["tool_calls"]
    assert call["index"] == 0 and call["function"]["name"] == "get_weather"
    assert deltas[2]["finish_reason"] == "tool_calls"


def test_tool_choice_none_hides_the_tools_and_parses_nothing(scripted, tiny_tools_model_dir):
    client, engine = scripted
    r = _chat(client, tiny_tools_model_dir, tool_choice="none")
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
    assert choice["message"]["content"] == "Checking. " + CALL
    prompt = load_tokenizer(str(tiny_tools_model_dir)).decode(engine.prompts[-1])
    assert "<tools>" not in prompt and "<tool_response>" in prompt


@pytest.mark.parametrize("tool_choice, answer", [
    ("required", 'get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'),
    ({"type": "function", "function": {"name": "get_weather"}},
     '{"city": "Oslo"}}\n</tool_call>'),
])
@pytest.mark.parametrize("stream", [False, True])
def test_tool_choice_required_or_named_starts_the_call(tmp_path, tiny_tools_model_dir,
                                                       tool_choice, answer, stream):
    """The call's opening is prefilled after the prompt; the model's continuation completes it
    (here scripted), and the whole call comes back as tool_calls."""
    engine = ScriptedEngine(answer)
    with _client(tmp_path, [tiny_tools_model_dir], engine) as client:
        r = _chat(client, tiny_tools_model_dir, tool_choice=tool_choice, stream=stream)
    assert r.status_code == 200, r.text
    if stream:
        chunks = [json.loads(x[6:]) for x in r.text.splitlines()
                  if x.startswith("data: {")]
        [call] = next(c["choices"][0]["delta"]["tool_calls"] for c in chunks
                      if c["choices"] and "tool_calls" in c["choices"][0]["delta"])
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    else:
        [choice] = r.json()["choices"]
        assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
        [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}
    prompt = load_tokenizer(str(tiny_tools_model_dir)).decode(engine.prompts[-1])
    opening = ('<tool_call>\n{"name": "' if tool_choice == "required"
               else '<tool_call>\n{"name": "get_weather", "arguments": ')
    assert prompt.endswith("<|im_start|>assistant\n" + opening)


def test_a_llama_style_json_call_of_an_offered_tool_becomes_tool_calls(tmp_path,
                                                                        tiny_tools_model_dir):
    engine = ScriptedEngine('{"name": "get_weather", "parameters": {"city": "Oslo"}}')
    with _client(tmp_path, [tiny_tools_model_dir], engine) as client:
        [choice] = _chat(client, tiny_tools_model_dir).json()["choices"]
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
        # the same JSON is an answer when the request offers no tools
        r = client.post("/v1/chat/completions", headers=AUTH, json={
            "model": str(tiny_tools_model_dir), "messages": HISTORY[:1]})
        assert r.json()["choices"][0]["message"]["content"].startswith('{"name"')


def test_tool_choice_needs_hermes_calls_and_an_offered_name(tmp_path, tiny_tools_model_dir):
    import shutil

    from transformers import AutoTokenizer

    other = tmp_path / "other-format"  # renders tools, but writes calls as <call> blocks
    shutil.copytree(tiny_tools_model_dir, other)
    tok = AutoTokenizer.from_pretrained(other)
    tok.chat_template = tok.chat_template.replace("tool_call>", "call>")
    tok.save_pretrained(other)
    engine = ScriptedEngine("x")
    with _client(tmp_path / "home", [tiny_tools_model_dir, other], engine) as client:
        r = _chat(client, other, tool_choice="required")
        assert r.status_code == 400 and "Hermes <tool_call>" in r.json()["error"]["message"]
        assert _chat(client, other).status_code == 200  # auto still works there
        r = _chat(client, tiny_tools_model_dir,
                  tool_choice={"type": "function", "function": {"name": "send_email"}})
        assert r.status_code == 400
        error = r.json()["error"]
        assert error["param"] == "tool_choice" and "'send_email'" in error["message"]
        assert "get_weather" in error["message"]


@pytest.mark.parametrize("extra, param, words", [
    ({"tools": None, "tool_choice": "auto"}, "tool_choice", "only allowed when 'tools'"),
    ({"tools": [{"type": "function", "function": {"name": "bad name"}}]},
     "tools.0.function.name", ""),
    ({"messages": [{"role": "tool", "content": "22C"}]}, "messages.0.tool_call_id",
     "tool_call_id"),
    ({"messages": [{"role": "user", "content": None}]}, "messages.0.content", "content"),
])
def test_what_cannot_be_served_is_a_400(scripted, tiny_tools_model_dir, extra, param, words):
    client, engine = scripted
    r = _chat(client, tiny_tools_model_dir, **extra)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and words in error["message"]
    assert engine.prompts == []  # refused before generating


@pytest.mark.parametrize("extra, param", [({}, "tools"), ({"tools": None}, "messages")])
def test_a_template_without_tools_is_refused_naming_the_model(scripted, tiny_model_dir, extra,
                                                             param):
    client, engine = scripted
    r = _chat(client, tiny_model_dir, **extra)
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error", param, "tools_unsupported")
    assert f"model {tiny_model_dir}'s chat template cannot render tool calls" in error["message"]
    assert engine.prompts == []


def test_real_generation_with_tools_answers(tmp_path, tiny_tools_model_dir):
    with _client(tmp_path, [tiny_tools_model_dir], Engine(max_batch=2)) as client:
        r = _chat(client, tiny_tools_model_dir, max_tokens=4, temperature=0)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "length" and isinstance(choice["message"]["content"], str)
