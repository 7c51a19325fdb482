"""A small OpenAI-compatible chat server of our own for tests: scripted answers, scripted
failures (429 with Retry-After, 401, 403, 404), and a count of the answers it completed. It
stands in for a provider where `tunesmith serve` cannot (a server that misbehaves on purpose)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedServer:
    """`answer(body) -> str` writes each reply. `fail(n, body) -> (status, headers) | None`
    fails the n-th request (1-based) when it returns a status. `hold` (an Event) makes every
    request after the first `hold_after` wait for it before answering."""

    def __init__(self, answer: Callable[[dict], str] = lambda body: "ok", *,
                 key: str = "sk-test-key", models: tuple[str, ...] = ("scripted",),
                 fail: Callable[[int, dict], tuple[int, dict] | None] | None = None,
                 delay: float = 0.0, hold_after: int | None = None) -> None:
        self.answer, self.key, self.models, self.fail = answer, key, set(models), fail
        self.delay, self.hold_after = delay, hold_after
        self.hold = threading.Event()
        self.drop_held = False
        """When the held requests are released: close them unanswered (their client is gone)."""
        self.received = 0
        """Chat requests that arrived."""
        self.completed = 0
        """Chat requests answered with a 200 (what a provider bills)."""
        self.bodies: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, message: str, code: str, headers=None) -> None:
                self._send(status, {"error": {"message": message, "type": "invalid_request_error",
                                              "param": None, "code": code}}, headers)

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {server.key}":
                    self._error(401, "Incorrect API key provided.", "invalid_api_key")
                    return False
                return True

            def do_GET(self) -> None:
                if not self._authorized():
                    return
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "test"}
                        for m in sorted(server.models)]})
                else:
                    self._error(404, "not found", "not_found")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self._authorized():
                    return
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._error(404, "not found", "not_found")
                    return
                with server._lock:
                    server.received += 1
                    n = server.received
                    server.bodies.append(body)
                failure = server.fail(n, body) if server.fail else None
                if failure is not None:
                    status, headers = failure
                    code = {429: "rate_limit_exceeded", 403: "model_not_allowed"}.get(status,
                                                                                    "error")
                    self._error(status, f"scripted {status}", code, headers)
                    return
                if body.get("model") not in server.models:
                    self._error(404, f"The model `{body.get('model')}` does not exist.",
                                "model_not_found")
                    return
                if server.hold_after is not None and n > server.hold_after:
                    server.hold.wait(60)
                    if server.drop_held:
                        self.close_connection = True
                        return
                time.sleep(server.delay)
                text = server.answer(body)
                reply = {"id": f"chatcmpl-{n}", "object": "chat.completion",
                         "created": int(time.time()), "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                      "message": {"role": "assistant", "content": text}}],
                         "usage": {"prompt_tokens": 10, "completion_tokens": 2,
                                   "total_tokens": 12}}
                self._send(200, reply)
                with server._lock:
                    server.completed += 1

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.hold.set()
        self._httpd.shutdown()
        self._httpd.server_close()
