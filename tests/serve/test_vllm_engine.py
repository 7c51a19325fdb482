"""`serve --engine vllm`'s routing, without vLLM: a stand-in server that speaks vLLM's adapter
endpoints checks the names tunesmith sends, the LRU unloading, the probe that catches an adapter
served as the base model, and errors in OpenAI's shape. (`make test-vllm` runs a real vLLM.)"""

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tunesmith.serve.errors import APIError
from tunesmith.serve.vllm import BASE_NAME, VllmEngine, VllmServer, adapter_name


class FakeVllm:
    """Answers like vLLM: /health, /v1/load_lora_adapter, /v1/unload_lora_adapter, and chat
    completions whose text names the model it ran (or the base's, when `ignore_adapters`)."""

    def __init__(self, ignore_adapters: bool = False) -> None:
        self.loaded: set[str] = set()
        self.calls: list[tuple[str, dict]] = []
        fake = self
        self.ignore = ignore_adapters

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.calls.append((self.path, body))
                if self.path == "/v1/load_lora_adapter":
                    fake.loaded.add(body["lora_name"])
                    return self._send(200, {})
                if self.path == "/v1/unload_lora_adapter":
                    fake.loaded.discard(body["lora_name"])
                    return self._send(200, {})
                model = body["model"]
                if model != BASE_NAME and model not in fake.loaded:
                    return self._send(404, {"error": {"message": f"The model `{model}` does "
                                                      "not exist.", "type": "NotFoundError"}})
                text = "base says hi" if fake.ignore or model == BASE_NAME else f"{model} says hi"
                self._send(200, {"id": "x", "object": "chat.completion", "model": model,
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": text}}],
                                 "usage": {"prompt_tokens": 5, "completion_tokens": 3,
                                           "total_tokens": 8}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()  # refused from now on, as a dead vLLM's port is


@pytest.fixture
def fake():
    server = FakeVllm()
    yield server
    server.close()


def engine_for(fake, tmp_path, own=None, max_cpu_loras=2):
    server = VllmServer("unused", tmp_path / "vllm.log", url=fake.url,
                        max_cpu_loras=max_cpu_loras).start(timeout_s=10)
    return VllmEngine(server, "base-spec", own_answers=own)


def test_adapters_load_under_their_own_names_and_the_least_recent_is_unloaded(fake, tmp_path):
    own = lambda adapter, prompts, n: [f"{adapter_name(adapter)} says hi"] * len(prompts)

    async def go():
        engine = engine_for(fake, tmp_path, own)
        names = [await engine.model_name(key, key) for key in ("/h/a", "/h/b")]
        await engine.model_name("/h/a", "/h/a")  # a is now the most recent
        await engine.model_name("/h/c", "/h/c")  # over 2: b goes
        answer = await engine.chat({"model": "ft:x:alpha:s:1", "messages": []}, names[0],
                                   "ft:x:alpha:s:1")
        await engine.close()
        return engine, names, answer

    engine, names, answer = asyncio.run(go())
    assert names == [adapter_name("/h/a"), adapter_name("/h/b")]
    assert all(not n.startswith("ft:") for n in names)  # the client's id never reaches vLLM
    assert fake.loaded == {adapter_name("/h/a"), adapter_name("/h/c")}
    assert answer["model"] == "ft:x:alpha:s:1"  # rewritten back to the client's id
    probe = engine.probes["/h/a"]
    assert probe.agree_with_tunesmith == 1.0 and probe.same_as_base == 0 and not probe.served_base


def test_an_adapter_served_as_the_base_model_is_caught_by_the_probe(tmp_path):
    fake = FakeVllm(ignore_adapters=True)  # vLLM silently answering with the base model
    own = lambda adapter, prompts, n: ["the adapter's own answer"] * len(prompts)

    async def go():
        engine = engine_for(fake, tmp_path, own)
        try:
            await engine.model_name("/h/a", "/h/a")
        finally:
            await engine.close()

    try:
        with pytest.raises(APIError, match="vLLM served the base model") as err:
            asyncio.run(go())
    finally:
        fake.close()
    assert err.value.status == 500 and err.value.code == "adapter_not_applied"
    assert fake.loaded == set()  # unloaded again


def test_vllm_down_or_refusing_comes_back_in_openais_shape(fake, tmp_path):
    async def go():
        engine = engine_for(fake, tmp_path)
        try:
            await engine.chat({"messages": []}, "a-unknown", "ft:x")
        except APIError as e:
            refused = e
        fake.close()
        try:
            await engine.chat({"messages": []}, BASE_NAME, "base-spec")
        except APIError as e:
            down = e
        await engine.close()
        return refused, down

    refused, down = asyncio.run(go())
    assert refused.status == 404 and "a-unknown" not in refused.message
    assert down.status == 503 and down.code == "engine_unavailable"
