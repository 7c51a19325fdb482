"""The chat-completions service behind `/v1/chat/completions`: a request checked against its
model (tools, template, context), rendered, queued on the engine as one row per choice, and its
answer gathered (or streamed as server-sent events) in OpenAI's shape.

With `tools`, the model's template must render them (else a 400 naming the model); generated
`<tool_call>` blocks become `message.tool_calls` (see `tunesmith.serve.toolcalls`, which also says
how streaming with tools is buffered, and how tool_choice "required" or a named function starts
the call for the model).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.responses import JSONResponse
from jinja2 import TemplateError

from tunesmith.data.render import supports_tools, writes_hermes_calls
from tunesmith.generation import Sampling, Step
from tunesmith.jobs.models import new_id, now
from tunesmith.jobs.store import JobStore
from tunesmith.serve.batch import Row
from tunesmith.serve.deps import ServeSettings
from tunesmith.serve.engine import Engine, QueueFull, queue_for
from tunesmith.serve.errors import APIError, not_found
from tunesmith.serve.schemas import ChatCompletionCreate
from tunesmith.serve.toolcalls import chat_message, forced_call_prefix, stream_delta

log = logging.getLogger(__name__)

DISCONNECT_POLL_S = 0.25
"""How often a plain (non-streaming) request checks that its client is still there."""
RETRY_AFTER_S = 1


@dataclass
class _Choice:
    """One answer being generated: its tokens, its text so far and what was already sent."""

    index: int
    tokenizer: object
    stops: list[str]
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    sent: int = 0
    finish_reason: str | None = None
    logprobs: list[dict] = field(default_factory=list)
    counted: int = 0
    """Completion tokens (the end-of-turn token included)."""

    def add(self, step: Step, want_logprobs: bool) -> None:
        self.counted += 1
        if step.eos:
            self.finish_reason = "stop"
            return
        self.tokens.append(step.token)
        self.text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        if want_logprobs:
            self.logprobs.append(self._entry(step.token, step.logprob, step.top))
        cuts = [self.text.find(s) for s in self.stops if s in self.text]
        if cuts:
            self.text, self.finish_reason = self.text[:min(cuts)], "stop"
        elif step.last:
            self.finish_reason = "length"

    def delta(self) -> str:
        """New text that is safe to send: complete characters, and nothing that might still
        turn out to be the start of a stop string."""
        end = len(self.text)
        if self.finish_reason is None:
            end -= max((len(s) - 1 for s in self.stops), default=0)
            while end > self.sent and self.text[end - 1] == "\ufffd":
                end -= 1
        if end <= self.sent:
            return ""
        out, self.sent = self.text[self.sent:end], end
        return out

    def _entry(self, token: int, logprob: float, top: list) -> dict:
        text = self.tokenizer.decode([token])
        return {"token": text, "logprob": logprob, "bytes": list(text.encode()),
                "top_logprobs": [{"token": (t := self.tokenizer.decode([i])), "logprob": lp,
                                  "bytes": list(t.encode())} for i, lp in top]}


class Busy(Exception):
    """The engine's queue is full: nothing of the request was queued (a 429)."""

    def response(self, engine: Engine) -> JSONResponse:
        """A 429 in OpenAI's shape."""
        return JSONResponse(status_code=429, headers={"Retry-After": str(RETRY_AFTER_S)},
                            content={"error": {
                                "message": f"The server is busy: {engine.max_queue} chat "
                                "completions are already waiting. Retry after a moment.",
                                "type": "requests", "param": None,
                                "code": "rate_limit_exceeded"}})


@dataclass
class ChatCall:
    """One chat-completions request, its rows queued on the engine."""

    body: ChatCompletionCreate
    queue: asyncio.Queue
    choices: list[_Choice]
    rows: list[Row]
    meta: dict
    prompt_tokens: int
    tools: bool
    """Whether the request offered tools (answers are parsed for calls)."""
    forced: str = ""
    """The opening of a call the answer was started with (tool_choice required/named)."""
    names: frozenset[str] = frozenset()

    def stream(self) -> AsyncIterator[str]:
        """The answer as server-sent events."""
        body = self.body
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return _stream(self.queue, self.choices, self.rows, body, self.meta, self.prompt_tokens,
                       include_usage, self.tools, self.forced, self.names)

    async def answer(self, request: Request) -> dict | None:
        """The `chat.completion` object; None when the client left before it was done."""
        try:
            finished = await _unless_disconnected(request, _drain(
                self.queue, self.choices, self.rows, self.body.logprobs))
        finally:
            for row in self.rows:
                row.cancelled.set()  # done, failed or abandoned: the engine drops the rows
        if not finished:
            return None
        answers = [chat_message(self.forced + c.text, self.tools, self.names)
                   for c in self.choices]
        return {**self.meta, "object": "chat.completion", "choices": [{
            "index": c.index, "message": message,
            "logprobs": {"content": c.logprobs, "refusal": None} if self.body.logprobs else None,
            "finish_reason": _finish(c, called)}
            for c, (message, called) in zip(self.choices, answers)],
            "usage": _usage(self.prompt_tokens, self.choices)}


def project_model(model: str, settings: ServeSettings, store: JobStore, project: str):
    """The project's own record of `model` and the key it is loaded by (a base model's spec,
    or its folder under the home).

    Raises:
        APIError: 404 for a model the project does not have (another project's included).
    """
    record = store.get_model(project, model)
    if record is None:
        raise not_found("model", model, "model")
    return record, record.spec if record.kind == "base" else str(settings.home / record.spec)


async def start_chat(body: ChatCompletionCreate, settings: ServeSettings, store: JobStore,
                     engine: Engine, project: str) -> ChatCall:
    """Check the request against its model, render it and queue one row per choice.

    Raises:
        APIError: an unknown model (404), tools its template cannot render, a template that
            refuses the messages, a prompt over the context (400).
        Busy: the engine's queue is full.
    """
    _, key = project_model(body.model, settings, store, project)
    messages = [m.template_message() for m in body.messages]
    tools = _offered_tools(body)
    names = frozenset(t["function"]["name"] for t in tools or [])
    try:
        forced = forced_call_prefix(body.tool_choice, tools or [])
    except ValueError as e:
        raise APIError(400, str(e), param="tool_choice", code="invalid_value") from e
    loop = asyncio.get_running_loop()
    if tools or any(m.tool_calls or m.role == "tool" for m in body.messages):
        await _require_tool_template(loop, engine, key, body.model,
                                     "tools" if tools else "messages")
    if forced and not await loop.run_in_executor(None, writes_hermes_calls,
                                                 engine.tokenizer(key)):
        raise APIError(400, f"tool_choice {body.tool_choice!r} needs a model whose template "
                       "writes Hermes <tool_call> blocks (e.g. Qwen2.5-Instruct); "
                       f"{body.model}'s does not. Use 'auto'.", param="tool_choice",
                       code="unsupported_value")
    try:
        prompt = await loop.run_in_executor(None, engine.render, key, messages, tools)
    except TemplateError as e:  # e.g. a template that insists on alternating roles
        raise APIError(400, f"The model's chat template refused these messages: {e}",
                       param="messages", code="invalid_messages") from e
    if forced:  # the call's opening, written for the model (see serve/toolcalls.py)
        prompt = prompt + engine.tokenizer(key)(forced, add_special_tokens=False)["input_ids"]
    # A request may fill the model's context, or the engine's whole batch budget if smaller.
    context = min(await loop.run_in_executor(None, engine.context_length, key),
                  engine.max_batch_tokens)
    if len(prompt) >= context:
        raise APIError(400, f"The messages have {len(prompt)} tokens; this model's context is "
                       f"{context}.", param="messages", code="context_length_exceeded")
    asked = body.max_completion_tokens or body.max_tokens or settings.default_max_tokens
    limit = min(asked, context - len(prompt))
    deadline = time.monotonic() + settings.request_timeout_s
    tokenizer = engine.tokenizer(key)
    queue, deliver = queue_for(loop)
    choices, rows = [], []
    for i in range(body.n):
        sampling = Sampling(limit, 1.0 if body.temperature is None else body.temperature,
                            body.top_p or 1.0, None if body.seed is None else body.seed + i,
                            (body.top_logprobs or 0) if body.logprobs else 0, deadline)
        choices.append(_Choice(i, tokenizer, body.stops()))
        rows.append(Row(key, prompt, sampling, lambda item, i=i: deliver((i, item))))
    if not engine.has_room(len(rows)):
        raise Busy
    try:
        for row in rows:
            engine.submit(row)
    except QueueFull:
        for row in rows:
            row.cancelled.set()  # the rows already queued are dropped unrun
        raise Busy from None
    meta = {"id": new_id("chat"), "created": now(), "model": body.model,
            "system_fingerprint": "tunesmith"}
    return ChatCall(body, queue, choices, rows, meta, len(prompt), tools is not None, forced,
                    names)


def _offered_tools(body: ChatCompletionCreate) -> list[dict] | None:
    """The tools to render and parse calls for; None when there are none or tool_choice is
    "none" (the model then never sees them)."""
    choice = body.tool_choice
    if choice is not None and not body.tools:
        raise APIError(400, "'tool_choice' is only allowed when 'tools' are specified.",
                       param="tool_choice", code="invalid_value")
    if not body.tools or choice == "none":
        return None
    return [t.model_dump(exclude_none=True) for t in body.tools]


async def _require_tool_template(loop, engine, key: str, model: str, param: str) -> None:
    """A 400 unless the model's template renders tools and calls (else they would vanish from
    the prompt without a word)."""
    if not await loop.run_in_executor(None, supports_tools, engine.tokenizer(key)):
        raise APIError(400, f"model {model}'s chat template cannot render tool calls; use a "
                       "model whose template supports tools (e.g. Qwen2.5-Instruct).",
                       param=param, code="tools_unsupported")


def _finish(choice: _Choice, called: bool) -> str | None:
    # A cut-off answer stays "length" even when it holds complete calls before the cut.
    return "tool_calls" if called and choice.finish_reason == "stop" else choice.finish_reason


async def _drain(queue: asyncio.Queue, choices: list[_Choice], rows: list[Row],
                 logprobs: bool) -> None:
    async for _ in _events(queue, choices, rows, logprobs):
        pass


async def _unless_disconnected(request: Request, work) -> bool:
    """Await `work`; stop it and return False as soon as the client has disconnected (so an
    abandoned request stops generating), else return True."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if done:
                task.result()
                return True
            if await request.is_disconnected():
                return False
    finally:
        task.cancel()


async def _events(queue: asyncio.Queue, choices: list[_Choice], rows: list[Row],
                  logprobs: bool) -> AsyncIterator[_Choice]:
    """Apply the engine's steps to the choices; yield each choice that changed."""
    while any(c.finish_reason is None for c in choices):
        index, item = await queue.get()
        if isinstance(item, Exception):
            raise item
        choice = choices[index]
        if choice.finish_reason is not None:
            continue
        choice.add(item, logprobs)
        if choice.finish_reason is not None:
            rows[index].cancelled.set()  # a stop string: the engine may drop the row
        yield choice


async def _stream(queue, choices, rows, body, meta, prompt_tokens, include_usage, buffer,
                  forced="", names=frozenset()):
    """`buffer`: hold each choice's text until it ends, then send it parsed for tool calls
    (after `forced`, the call's opening the answer was started with)."""
    def chunk(choice_list: list[dict], usage: dict | None = None) -> str:
        data = {**meta, "object": "chat.completion.chunk", "choices": choice_list}
        if include_usage:
            data["usage"] = usage
        return f"data: {json.dumps(data)}\n\n"

    try:
        for c in choices:
            yield chunk([{"index": c.index, "delta": {"role": "assistant", "content": ""},
                          "logprobs": None, "finish_reason": None}])
        pending = {c.index: 0 for c in choices}  # logprob entries already sent
        async for c in _events(queue, choices, rows, body.logprobs):
            if buffer:
                if c.finish_reason is not None:
                    delta, called = stream_delta(forced + c.text, names)
                    yield chunk([{"index": c.index, "delta": delta, "logprobs": {
                        "content": c.logprobs, "refusal": None} if body.logprobs else None,
                        "finish_reason": None}])
                    yield chunk([{"index": c.index, "delta": {}, "logprobs": None,
                                  "finish_reason": _finish(c, called)}])
                continue
            text = c.delta()
            new_lp = c.logprobs[pending[c.index]:]
            if text or new_lp:
                pending[c.index] = len(c.logprobs)
                yield chunk([{"index": c.index, "delta": {"content": text},
                              "logprobs": {"content": new_lp, "refusal": None}
                              if body.logprobs else None, "finish_reason": None}])
            if c.finish_reason is not None:
                yield chunk([{"index": c.index, "delta": {}, "logprobs": None,
                              "finish_reason": c.finish_reason}])
        if include_usage:
            yield chunk([], _usage(prompt_tokens, choices))
        yield "data: [DONE]\n\n"
    except Exception as e:  # noqa: BLE001 - the stream has started: report in-band
        # The same words as a 500 before the stream starts: internals stay in the server log.
        log.error("chat stream failed: %s: %s", type(e).__name__, e)
        error = {"message": "The server had an error while processing your request.",
                 "type": "server_error", "param": None, "code": "server_error"}
        yield f"data: {json.dumps({'error': error})}\n\n"
    finally:
        for row in rows:
            row.cancelled.set()


def _usage(prompt_tokens: int, choices: list[_Choice]) -> dict:
    completion = sum(c.counted for c in choices)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion}
