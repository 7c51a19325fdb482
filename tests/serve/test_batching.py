"""Continuous batching (issue 15, item 3): rows join a running batch at the next step and leave
at once, rows of different adapters share a batch, and each row's greedy answer is the one it
gets alone. The engine is driven directly; the 429 goes through the app."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest

from tests.serve.test_engine import _adapter  # the same random LoRA adapters
from tunesmith.generation import Sampling
from tunesmith.jobs.sqlite import SQLiteStore
from tunesmith.serve.app import create_app
from tunesmith.serve.deps import ServeSettings
from tunesmith.serve.engine import Engine, QueueFull, Row

PROMPTS = ["hello", "a longer question about the billing of my account, please",
           "what is 12 times 7?", "x"]


@pytest.fixture(autouse=True)
def fp32(monkeypatch):
    """Run in float32 even where the CPU is fast at bf16: the claim under test is that a row's
    tokens do not depend on its batch, and bf16's rounding (which moves with batch shape) flips
    near-ties of a random model's flat distribution."""
    monkeypatch.setattr("tunesmith.modeling.supports_bf16", lambda device: False)


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    return [_adapter(tiny_model_dir, root / name, seed)
            for seed, name in enumerate(["one", "two", "three"], start=1)]


class Run:
    """One submitted row: its tokens and log-probabilities as they arrive."""

    def __init__(self, engine, key, prompt, sampling, events=None, name=None):
        self.tokens, self.logprobs, self.errors = [], [], []
        self.done = threading.Event()

        def deliver(item):
            if isinstance(item, Exception):
                self.errors.append(item)
                self.done.set()
                return
            self.tokens.append(item.token)
            self.logprobs.append(item.logprob)
            if events is not None:
                events.append((name, len(self.tokens), item.last))
            if item.last:
                self.done.set()

        self.row = Row(key, prompt, sampling, deliver)
        engine.submit(self.row)

    def wait(self):
        assert self.done.wait(120) and not self.errors, self.errors
        return self.tokens


def _prompt(engine, key, text):
    return engine.render(key, [{"role": "user", "content": text}])


def _alone(key, prompts, max_tokens):
    """Each prompt run alone on a fresh engine."""
    engine = Engine(max_batch=1)
    return [Run(engine, key, p, Sampling(n, 0.0)) for p, n in zip(prompts, max_tokens)]


def test_a_request_joins_a_running_generation(tiny_model_dir):
    base = str(tiny_model_dir)
    engine = Engine(max_batch=8)
    events: list[tuple[str, int, bool]] = []
    prompt = _prompt(engine, base, "hello")
    long = Run(engine, base, prompt, Sampling(300, 0.0), events, "long")
    while len(long.tokens) < 5:  # the long row is running
        assert not long.done.wait(0.01)
    short = Run(engine, base, _prompt(engine, base, "hi"), Sampling(3, 0.0), events, "short")
    assert short.done.wait(60) and long.done.wait(120)
    assert len(long.tokens) == 300  # it ran to its end, not stopped by an end-of-turn token
    first_short = events.index(("short", 1, False))
    long_then = max(n for name, n, _ in events[:first_short] if name == "long")
    assert long_then < 300 - 20  # the short request's first token came mid-generation
    last_short = events.index(("short", 3, True))
    assert any(name == "long" for name, _, _ in events[last_short + 1:])  # and it left first
    # Its answer is the one it gets alone, although it joined a batch in full flight.
    assert short.tokens == _alone(base, [short.row.prompt], [3])[0].wait()


def test_greedy_rows_joining_and_leaving_match_each_run_alone(tiny_model_dir):
    base = str(tiny_model_dir)
    engine = Engine(max_batch=8)
    prompts = [_prompt(engine, base, t) for t in PROMPTS]
    budgets = [40, 7, 25, 12]
    runs = [Run(engine, base, prompts[0], Sampling(budgets[0], 0.0))]
    for p, n in zip(prompts[1:], budgets[1:]):  # each joins while earlier rows run
        while len(runs[-1].tokens) < 2 and not runs[-1].done.is_set():
            threading.Event().wait(0.005)
        runs.append(Run(engine, base, p, Sampling(n, 0.0)))
    alone = _alone(base, prompts, budgets)
    for got, want in zip(runs, alone):
        assert got.wait() == want.wait()
        assert got.logprobs == pytest.approx(want.logprobs, abs=1e-4)  # batch-shape noise
    assert engine.running() == 0 and engine._running == {}  # every row left; caches freed


def test_mixed_adapters_in_one_batch_match_each_alone(tiny_model_dir, adapters):
    base = str(tiny_model_dir)
    keys = [adapters[0], base, adapters[1], adapters[0], base, adapters[1]]
    engine = Engine(max_batch=8, start=False)
    prompt = _prompt(engine, base, "hello there")
    prompts = [prompt, prompt, prompt, _prompt(engine, base, "x"), prompt,
               _prompt(engine, base, "what is 12 times 7?")]
    steps: list[int] = []
    runs = []
    for key, p, n in zip(keys, prompts, [8, 8, 6, 5, 3, 8]):
        runs.append(Run(engine, key, p, Sampling(n, 0.0)))
        runs[-1].row.deliver = _counting(runs[-1].row.deliver, engine, steps)
    engine.start()
    got = [r.wait() for r in runs]
    assert max(steps) == 6  # all six rows ran in one batch
    static = Engine(max_batch=1, continuous=False)  # PEFT's one-adapter-at-a-time path
    want = [Run(static, k, p, Sampling(len(g), 0.0)).wait()
            for k, p, g in zip(keys, prompts, got)]
    assert got == want
    assert got[0] != got[1] != got[2]  # the adapters do change the answer
    assert len(engine._bases) == 1


def _counting(deliver, engine, steps):
    def wrapped(item):
        steps.append(engine.running())
        deliver(item)
    return wrapped


def test_adapters_past_the_cap_are_evicted_least_recently_used_first(tiny_model_dir, adapters):
    one, two, three = adapters
    engine = Engine(max_batch=4, max_adapters=2)
    prompt = _prompt(engine, str(tiny_model_dir), "hello")
    first = Run(engine, one, prompt, Sampling(5, 0.0)).wait()
    Run(engine, two, prompt, Sampling(5, 0.0)).wait()
    Run(engine, three, prompt, Sampling(5, 0.0)).wait()
    assert engine.loaded_adapters() == [two, three]  # `one` was the least recently used
    model = engine._bases[next(iter(engine._bases))][0]
    assert len(model.peft_config) == 2
    assert Run(engine, one, prompt, Sampling(5, 0.0)).wait() == first  # loaded again, same
    assert engine.loaded_adapters() == [three, one]


def test_the_batch_token_budget_keeps_big_rows_apart(tiny_model_dir):
    base = str(tiny_model_dir)
    engine = Engine(max_batch=8, max_batch_tokens=100, start=False)
    prompt = _prompt(engine, base, "hello")
    assert len(prompt) + 30 <= 100 < 2 * (len(prompt) + 30)
    steps: list[int] = []
    runs = [Run(engine, base, prompt, Sampling(30, 0.0)) for _ in range(3)]
    for r in runs:
        r.row.deliver = _counting(r.row.deliver, engine, steps)
    engine.start()
    assert [r.wait() for r in runs] == [runs[0].tokens] * 3
    assert max(steps) == 1  # two such rows would need 2 x their tokens: they ran one by one


def test_the_queue_is_bounded(tiny_model_dir):
    base = str(tiny_model_dir)
    engine = Engine(max_queue=2, start=False)
    prompt = _prompt(engine, base, "hello")
    Run(engine, base, prompt, Sampling(2, 0.0))
    Run(engine, base, prompt, Sampling(2, 0.0))
    with pytest.raises(QueueFull):
        Run(engine, base, prompt, Sampling(2, 0.0))
    assert engine.waiting() == 2 and not engine.has_room(1)


def test_a_full_queue_answers_429_with_retry_after(tmp_path, tiny_model_dir):
    model = str(tiny_model_dir)
    engine = Engine(max_queue=2, start=False)
    settings = ServeSettings(tmp_path, {"k": "alpha"}, 10_000, [model], default_max_tokens=4)
    app = create_app(settings, SQLiteStore(tmp_path / "db"), engine)
    headers = {"Authorization": "Bearer k", "Content-Type": "application/json"}

    def body(n):
        return json.dumps({"model": model, "n": n, "max_tokens": 3, "messages": [
            {"role": "user", "content": "hello"}]}).encode()

    async def scenario():
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            queued = asyncio.ensure_future(client.post("/v1/chat/completions", content=body(2),
                                                       headers=headers))
            for _ in range(600):
                if engine.waiting() == 2:
                    break
                await asyncio.sleep(0.05)
            refused = await client.post("/v1/chat/completions", content=body(1),
                                        headers=headers)
            engine.start()
            return refused, await queued

    refused, queued = asyncio.run(scenario())
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
    assert queued.status_code == 200 and len(queued.json()["choices"]) == 2
