"""Endpoint answers read into label scores and generations (the parsing, on recorded response
shapes; live servers are in tests/endpoints/), and the response cache."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np

from tunesmith.data.examples import Example, Message
from tunesmith.data.taskfile import TaskSpec
from tunesmith.endpoints.cache import ResponseCache
from tunesmith.evaluation.backends import EndpointBackend, first_token_scores
from tunesmith.evaluation.runner import evaluate


def test_first_token_scores():
    labels = ["negative", "positive", "neutral"]
    scores, ambiguous = first_token_scores([("positive", -0.2), (" neg", -1.5), ("ne", -3.0)],
                                           labels)
    assert scores.tolist() == [-1.5, -0.2, -3.0] and not ambiguous
    scores, ambiguous = first_token_scores([("ne", -0.1), ("positive", -2.0)], labels)
    assert ambiguous  # the best first token starts two labels
    scores, ambiguous = first_token_scores([("The", -0.1), ("\n", -0.5)], labels)
    assert np.isneginf(scores).all() and not ambiguous


def _response(text, top=None, prompt_tokens=12):
    logprobs = None
    if top is not None:
        logprobs = {"content": [{"token": top[0][0], "logprob": top[0][1],
                                 "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top]}]}
    return {"choices": [{"message": {"content": text}, "finish_reason": "stop",
                         "logprobs": logprobs}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1}}


class Recorded:
    """An endpoint client that answers from a list of recorded responses."""

    def __init__(self, answer):
        self.answer, self.requests = answer, []
        self.endpoint = SimpleNamespace(spec="openai:recorded", model="recorded")

    def complete(self, requests):
        self.requests += requests
        return [self.answer(r) for r in requests]


SPEC = TaskSpec("classification", ["card_arrival", "card_linking", "refund"], "Intent?")


def ex(text, label):
    return Example(0, [Message("user", text), Message("assistant", label)], label=label)


def test_endpoint_scoring_decides_by_first_token_and_generates_the_rest():
    def answer(request):
        text = request["messages"][-1]["content"]
        if request.get("logprobs"):
            if "money" in text:
                return _response("refund", [("refund", -0.1), ("card", -2.0)])
            if "no logprobs" in text:
                return _response("x", None)
            return _response("card", [("card", -0.2), ("refund", -3.0)])  # card_...: ambiguous
        return _response("card_linking" if "link" in text else "card_arrival")

    client = Recorded(answer)
    result = evaluate(EndpointBackend(client), [
        ex("I want my money back", "refund"), ex("where is my card", "card_arrival"),
        ex("link my card", "card_linking"), ex("no logprobs here", "card_arrival")], SPEC)
    assert result.predictions == ["refund", "card_arrival", "card_linking", "card_arrival"]
    assert result.notes and "3 of 4 answers were generated" in result.notes[0]
    scored = [r for r in client.requests if r.get("logprobs")]
    assert len(scored) == 4 and all(r["top_logprobs"] == 20 and r["max_tokens"] == 1
                                    for r in scored)
    assert all(r["temperature"] == 0 for r in client.requests)


def test_cache_keys_and_damage(tmp_path):
    cache = ResponseCache(tmp_path)
    request = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    key = cache.key("http://h/v1/", "m", request)
    assert key == cache.key("http://h/v1", "m", request)  # trailing slash: the same endpoint
    assert key != cache.key("http://h/v1", "m2", request)
    assert key != cache.key("http://h/v1", "m", {**request, "max_tokens": 4})
    assert cache.get(key) is None
    cache.put(key, request, {"choices": []})
    assert cache.get(key) == {"choices": []} and cache.hits == 1
    path = next(tmp_path.rglob("*.json"))
    assert json.loads(path.read_text())["request"] == request
    path.write_text("{truncated")
    assert cache.get(key) is None  # damaged: asked again, not a crash
