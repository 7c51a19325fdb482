"""One tenant's request can never fail, change or hold up another's (issue 9, classes 1-2).

In-process throughout: the engine directly, the app through httpx's ASGI transport (several
requests at once on one event loop), and a raw ASGI call for a client that disconnects.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

from tunesmith.generation import Sampling
from tunesmith.jobs.sqlite import SQLiteStore
from tunesmith.serve.app import create_app
from tunesmith.serve.deps import ServeSettings
from tunesmith.serve.engine import Engine, Row

KEYS = {"ka": "alpha", "kb": "beta"}


def _collect(engine, key, prompt, sampling, deliver_hook=None):
    """Submit one row; return (tokens list, done event, errors list)."""
    tokens, errors, done = [], [], threading.Event()

    def deliver(item):
        if deliver_hook is not None:
            deliver_hook(item)
        if isinstance(item, Exception):
            errors.append(item)
            done.set()
            return
        tokens.append(item.token)
        if item.last:
            done.set()

    engine.submit(Row(key, prompt, sampling, deliver))
    return tokens, done, errors


def test_a_rows_own_failures_stay_with_it(tiny_model_dir):
    base = str(tiny_model_dir)
    alone = Engine(max_batch=8)
    prompt = alone.render(base, [{"role": "user", "content": "hello there"}])
    ref, done, _ = _collect(alone, base, prompt, Sampling(8, 0.0))
    assert done.wait(60)

    engine = Engine(max_batch=8, start=False)
    good, good_done, good_errors = _collect(engine, base, prompt, Sampling(8, 0.0))

    def gone(item):  # a client whose event loop has closed
        raise RuntimeError("Event loop is closed")

    _, _, _ = _collect(engine, base, prompt, Sampling(8, 0.0), deliver_hook=gone)
    _, bad_seed_done, bad_seed_errors = _collect(engine, base, prompt, Sampling(8, 1.0, seed=2**70))
    good2, good2_done, _ = _collect(engine, base, prompt, Sampling(8, 0.0))
    assert engine.waiting() == 4
    engine.start()
    assert good_done.wait(60) and good2_done.wait(60)
    assert good == ref and good2 == ref and not good_errors
    assert bad_seed_done.wait(10) and not bad_seed_errors  # seeds are taken modulo 2**64


def test_a_prompt_that_breaks_the_batched_pass_fails_alone(tiny_model_dir):
    base = str(tiny_model_dir)
    engine = Engine(max_batch=8, start=False)
    prompt = engine.render(base, [{"role": "user", "content": "hello there"}])
    broken = prompt[:-1] + [10**9]  # no such token: the embedding lookup fails
    good, good_done, good_errors = _collect(engine, base, prompt, Sampling(6, 0.0))
    _, bad_done, bad_errors = _collect(engine, base, broken, Sampling(6, 0.0))
    engine.start()
    assert good_done.wait(60) and bad_done.wait(60)
    assert len(good) == 6 and not good_errors
    assert len(bad_errors) == 1 and isinstance(bad_errors[0], IndexError)


# ---- through the HTTP layer: two projects batched together ------------------------------------


def _app(tmp_path, model_dir, engine, **settings):
    options = {"default_max_tokens": 16, **settings}
    return create_app(ServeSettings(tmp_path, KEYS, 10_000, [str(model_dir)], **options),
                      SQLiteStore(tmp_path / "db"), engine)


def _body(model, text="hello there", **kw):
    return {"model": model, "messages": [{"role": "user", "content": text}], **kw}


async def _post(client, key, body):
    # json.dumps escapes lone surrogates (\\udc80) as a hostile client would send them.
    return await client.post("/v1/chat/completions", content=json.dumps(body).encode(),
                             headers={"Authorization": f"Bearer {key}",
                                      "Content-Type": "application/json"})


HOSTILE_VALID = [  # accepted: each runs next to the other project's requests
    {"seed": 2**63 - 1, "n": 4, "temperature": 2.0},
    {"seed": -(2**63), "temperature": 1e-300},
    {"top_p": 1e-9, "temperature": 1.5, "seed": 1},
    {"logprobs": True, "top_logprobs": 20, "max_tokens": 3},
    {"n": 16, "max_tokens": 2, "temperature": 1.0},
    {"stop": ["\n", "a", "é", "\u0000"], "max_tokens": 10},
    {"max_tokens": 10**9},
    {"max_completion_tokens": 1},
    {"stream": True, "stream_options": {"include_usage": True}, "max_tokens": 4},
]
HOSTILE_INVALID = [  # refused with a 400 naming the parameter; never reach the engine
    ({"seed": 2**70}, "seed"),
    ({"seed": -(2**64)}, "seed"),
    ({"temperature": -1}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"n": 0}, "n"),
    ({"n": 10**6}, "n"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"top_logprobs": 21}, "top_logprobs"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"messages": [{"role": "user", "content": None}]}, "messages.0.content"),
    ({"messages": [{"role": "user", "content": []}]}, "messages.0.content"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.tool_call_id"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "user", "content": "bad \udc80"}]}, None),
]


def test_two_projects_batched_while_one_sends_every_extreme(tmp_path, tiny_model_dir):
    model = str(tiny_model_dir)
    reference_engine = Engine(max_batch=64)
    engine = Engine(max_batch=64, start=False)

    async def scenario():
        transport = httpx.ASGITransport(_app(tmp_path, tiny_model_dir, engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            alpha = [_body(model, "hello there", temperature=0, max_tokens=8),
                     _body(model, "a longer question about the billing of my account",
                           temperature=0, max_tokens=8, logprobs=True, top_logprobs=2)]
            beta = [_body(model, **extra) for extra in HOSTILE_VALID]
            beta.append(_body(model, "x " * 400, max_tokens=50))  # fills the 512 context
            tasks = [asyncio.ensure_future(_post(client, "ka", b)) for b in alpha]
            tasks += [asyncio.ensure_future(_post(client, "kb", b)) for b in beta]
            rows = 2 + sum(b.get("n", 1) for b in beta)
            for _ in range(600):  # every row waits in the engine's queue, then all run together
                if engine.waiting() == rows:
                    break
                await asyncio.sleep(0.05)
            assert engine.waiting() == rows
            engine.start()
            invalid = [asyncio.ensure_future(_post(client, "kb", {**_body(model), **bad}))
                       for bad, _ in HOSTILE_INVALID]
            return await asyncio.gather(*tasks), await asyncio.gather(*invalid), alpha

    responses, invalid, alpha = asyncio.run(scenario())

    async def alone():
        transport = httpx.ASGITransport(_app(tmp_path / "ref", tiny_model_dir, reference_engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [await _post(client, "ka", b) for b in alpha]

    (tmp_path / "ref").mkdir()
    reference = asyncio.run(alone())
    for got, want in zip(responses[:2], reference):
        assert got.status_code == 200 and want.status_code == 200
        g, w = got.json(), want.json()
        assert g["usage"] == w["usage"]
        for a, b in zip(g["choices"], w["choices"]):  # the same answer; log-probabilities
            assert (a["message"], a["finish_reason"]) == (b["message"], b["finish_reason"])
            for x, y in zip((a["logprobs"] or {}).get("content", []),  # move only by float
                            (b["logprobs"] or {}).get("content", [])):  # noise of batch shape
                assert x["token"] == y["token"] and x["logprob"] == pytest.approx(y["logprob"],
                                                                                  abs=1e-3)
    for r in responses[2:]:
        assert r.status_code == 200, r.text
    streamed = responses[2 + HOSTILE_VALID.index(HOSTILE_VALID[-1])].text
    assert streamed.rstrip().endswith("data: [DONE]") and '"error"' not in streamed
    for r, (_, param) in zip(invalid, HOSTILE_INVALID):
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == param, r.text


@pytest.fixture(scope="module")
def long_model(tokenizer, tmp_path_factory):
    """A tiny model with an 8,192-token context: a request may generate for a long time."""
    from tunesmith.modeling import build_tiny_model

    folder = tmp_path_factory.mktemp("long-context")
    build_tiny_model(len(tokenizer), max_positions=8192).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_default_max_tokens_and_time_budget(tmp_path, long_model):
    model = str(long_model)
    engine = Engine(max_batch=8)

    async def run(body: dict, **settings):
        transport = httpx.ASGITransport(_app(tmp_path, long_model, engine, **settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            started = time.monotonic()
            r = await _post(client, "ka", _body(model, temperature=1.0, seed=0, **body))
            return r.json(), time.monotonic() - started

    doc, _ = asyncio.run(run({}, default_max_tokens=5))  # no max_tokens: the server's default
    assert doc["usage"]["completion_tokens"] <= 5
    doc, _ = asyncio.run(run({"max_tokens": 7}, default_max_tokens=5))
    assert doc["usage"]["completion_tokens"] <= 7
    doc, seconds = asyncio.run(run({"max_tokens": 8000}, request_timeout_s=0.5))
    assert doc["choices"][0]["finish_reason"] == "length"  # the time budget ended it
    assert doc["usage"]["completion_tokens"] < 8000 and seconds < 5


def test_non_streaming_client_that_leaves_stops_its_rows(tmp_path, long_model):
    """A raw ASGI call whose client disconnects after 0.5 s: the row is cancelled at once and
    stops producing tokens (a long context keeps it busy otherwise)."""
    folder = long_model
    engine = Engine(max_batch=8)
    rows: list[Row] = []
    submit = engine.submit
    engine.submit = lambda row: (rows.append(row), submit(row))
    app = _app(tmp_path, folder, engine)
    body = json.dumps(_body(str(folder), max_tokens=8000, temperature=1.0, seed=0)).encode()

    async def call():
        sent = asyncio.Event()
        leave = asyncio.Event()
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            if messages:
                return messages.pop(0)
            await leave.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            sent.set()

        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions",
                 "headers": [(b"content-type", b"application/json"),
                             (b"authorization", b"Bearer ka"),
                             (b"content-length", str(len(body)).encode())],
                 "query_string": b"", "http_version": "1.1", "scheme": "http",
                 "server": ("t", 80), "client": ("c", 1), "root_path": "", "asgi": {"version": "3.0"}}
        task = asyncio.ensure_future(app(scope, receive, send))
        for _ in range(200):
            if rows:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        leave.set()
        left = time.monotonic()
        await asyncio.wait_for(task, 30)
        return left

    left = asyncio.run(call())
    assert rows and rows[0].cancelled.is_set()
    assert time.monotonic() - left < 5
    produced = []
    original = rows[0].deliver
    rows[0].deliver = lambda item: (produced.append(item), original(item))
    time.sleep(0.5)
    steps = [item for item in produced if not isinstance(item, Exception)]
    assert len(steps) <= 1  # at most the step in flight when it was cancelled
