"""The chat engine: loads models on demand and runs chat requests on one thread.

Continuous batching (the default): each base model has one running batch
(`tunesmith.serve.batch.DecodeBatch`). A waiting request joins it at the next decode step (its
prompt is prefilled apart, then merged), and a row that ends leaves at once, freeing its share
of the KV cache. Rows for different LoRA adapters of one base share the batch (PEFT's mixed-
adapter inference), so tokens reach each request's asyncio queue as they are made, whatever
else runs.

The static engine (`continuous=False`, `tunesmith serve --engine static`) is the earlier
behaviour, kept to measure against: requests for one model that wait together run as one batch
(`generation.decode_rows`) until its longest row ends, while new requests wait.

LoRA models share their base's weights: the base is loaded once (bf16 where the hardware is
fast at it) and each fine-tuned model or checkpoint is a named adapter on one PeftModel, at most
`max_adapters` of them (the least recently used idle one is deleted past that). A full
fine-tune is a model of its own.

Limits: the waiting queue holds at most `max_queue` rows (`submit` raises `QueueFull` beyond,
which the route answers with a 429), and a running batch holds at most `max_batch` rows and
`max_batch_tokens` padded cache tokens (rows x longest prompt + max_tokens), so no mix of
requests can grow the cache past what was planned for.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path

from tunesmith.data.render import render
from tunesmith.errors import TunesmithError
from tunesmith.generation import Step, decode_rows, stop_ids
from tunesmith.modeling import (
    adapter_base,
    load_for_inference,
    load_tokenizer,
    model_dir,
    resolve_model,
)
from tunesmith.serve.batch import BASE, DecodeBatch, Row

log = logging.getLogger(__name__)


class QueueFull(TunesmithError):
    """The engine's waiting queue is full: try again shortly (HTTP 429)."""


class Engine:
    """Runs chat rows; `submit` from any thread or event loop.

    One row can never fail another: a row's own failure (its seed, its sampling, its delivery
    to a client that is gone) ends that row only, and when a shared prefill fails, each new
    row is prefilled alone so the failure stays with the row that caused it.

    Args:
        max_batch: most rows decoded together (per base model).
        max_loaded: most base models in memory; idle ones are unloaded, least recently used
            first.
        start: start the engine thread now (`start=False` only queues rows: tests use it to
            make rows wait together).
        gather_s: static engine only: how long a batch waits for company while clients are
            busy.
        continuous: continuous batching with mixed adapters (False: the static engine).
        max_adapters: most LoRA adapters loaded at once, over all bases.
        max_batch_tokens: most padded KV-cache tokens of one running batch (rows x the
            longest row's prompt + max_tokens).
        max_queue: most rows waiting to run; `submit` raises `QueueFull` beyond.
    """

    def __init__(self, max_batch: int = 16, max_loaded: int = 4, *, start: bool = True,
                 gather_s: float = 0.02, continuous: bool = True, max_adapters: int = 8,
                 max_batch_tokens: int = 65536, max_queue: int = 256) -> None:
        self.max_batch, self.max_loaded, self.gather_s = max_batch, max_loaded, gather_s
        self.continuous, self.max_adapters = continuous, max_adapters
        self.max_batch_tokens, self.max_queue = max_batch_tokens, max_queue
        self._waiting: deque[Row] = deque()
        self._ready = threading.Condition()
        self._bases: OrderedDict[str, tuple] = OrderedDict()  # base folder -> (model, tokenizer)
        self._adapters: OrderedDict[str, str] = OrderedDict()  # adapter folder -> base; LRU first
        self._running: dict[str, DecodeBatch] = {}  # base folder -> its running batch
        self._thread = threading.Thread(target=self._loop if continuous else self._loop_static,
                                        name="tunesmith-engine", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        """Start running rows."""
        self._thread.start()

    def waiting(self) -> int:
        """Rows queued and not yet running."""
        return len(self._waiting)

    def has_room(self, rows: int) -> bool:
        """Whether `rows` more rows fit in the waiting queue now."""
        return len(self._waiting) + rows <= self.max_queue

    def running(self) -> int:
        """Rows in running batches (continuous engine)."""
        return sum(len(b) for b in list(self._running.values()))

    # ---- models ---------------------------------------------------------------------------

    def tokenizer(self, key: str):
        return load_tokenizer(key)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - the engine lives as long as the server
    def context_length(self, key: str) -> int:
        """From the model's config alone: loading weights is the engine thread's job only (a
        PEFT adapter must not be added while a batch runs on the same base)."""
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(_placement(key)[0])
        return int(getattr(config, "max_position_embeddings", 2048) or 2048)

    def _load(self, key: str, busy: set[str] = frozenset()) -> tuple | None:
        """(model, tokenizer, adapter name or BASE) ready to run `key`, loading what is
        missing; None when that would unload a base or adapter in `busy` (rows of it run or
        are being admitted), so the row must wait."""
        base_dir, adapter = _placement(key)
        if base_dir not in self._bases:
            idle = [b for b in self._bases if b not in busy]
            if len(self._bases) >= self.max_loaded:
                if not idle:
                    return None
                self._bases.pop(idle[0])
                self._adapters = OrderedDict((a, b) for a, b in self._adapters.items()
                                             if b != idle[0])
            self._bases[base_dir] = load_for_inference(base_dir)
        self._bases.move_to_end(base_dir)
        model, tok = self._bases[base_dir]
        if adapter is None:
            return model, tok, BASE
        name = adapter_name(adapter)
        if adapter not in self._adapters:
            idle = [a for a in self._adapters if adapter_name(a) not in busy]
            if len(self._adapters) >= self.max_adapters and not idle:
                return None
            model = self._add_adapter(base_dir, adapter, name)
            if len(self._adapters) > self.max_adapters:  # loaded first: a PeftModel is never empty
                evicted = idle[0]
                self._bases[self._adapters.pop(evicted)][0].delete_adapter(adapter_name(evicted))
                log.info("unloaded adapter %s (least recently used)", evicted)
        self._adapters.move_to_end(adapter)
        return model, tok, name

    def _add_adapter(self, base_dir: str, folder: str, name: str):
        from peft import PeftModel

        model, tok = self._bases[base_dir]
        dtype = next(model.parameters()).dtype
        if isinstance(model, PeftModel):
            model.load_adapter(folder, adapter_name=name)
        else:
            model = PeftModel.from_pretrained(model, folder, adapter_name=name)
            self._bases[base_dir] = (model, tok)
            if base_dir in self._running:  # LoRA layers now wrap the base's: name every row
                self._running[base_dir].model = model
        model.eval()
        for param_name, p in model.named_parameters():
            if f".{name}." in param_name:
                p.data = p.data.to(dtype)
        model.requires_grad_(True)  # see load_for_inference: keeps matmuls fast
        self._adapters[folder] = base_dir
        return model

    def loaded_adapters(self) -> list[str]:
        """Adapter folders loaded now, least recently used first."""
        return list(self._adapters)

    def render(self, key: str, messages: list[dict], tools: list[dict] | None = None
               ) -> list[int]:
        tok = self.tokenizer(key)
        text = render(tok, [messages], add_generation_prompt=True, tools=tools)[0]
        return tok(text, add_special_tokens=False)["input_ids"]

    # ---- queue ----------------------------------------------------------------------------

    def submit(self, row: Row) -> None:
        """Queue a row.

        Raises:
            QueueFull: `max_queue` rows are already waiting.
        """
        with self._ready:
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(f"{len(self._waiting)} chat rows are already waiting")
            self._waiting.append(row)
            self._ready.notify()

    def _take(self, timeout: float | None) -> Row | None:
        with self._ready:
            if not self._waiting and not self._ready.wait_for(lambda: self._waiting, timeout):
                return None
            return self._waiting.popleft()

    # ---- continuous batching --------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._waiting or self._running)
            for base_dir, (rows, names) in self._admit().items():
                model, tok = self._bases[base_dir]
                batch = self._running.get(base_dir)
                if batch is None:
                    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
                    batch = DecodeBatch(model, stop_ids(tok, model), pad, _fail)
                    self._running[base_dir] = batch
                batch.join(rows, names)
            for base_dir, batch in list(self._running.items()):
                if batch:
                    try:
                        batch.step()
                    except Exception as e:  # the shared pass failed: all its rows end
                        log.exception("a decode step of %d rows failed", len(batch))
                        batch.fail_all(e)
                if not batch:
                    del self._running[base_dir]

    def _admit(self) -> dict[str, tuple[list[Row], list[str]]]:
        """Take the waiting rows that fit now, in arrival order, grouped by base folder. A row
        that does not fit (its batch is full, or its model cannot be loaded without unloading
        one in use) keeps its place and holds back the later rows of the same base, so a big
        request is not overtaken forever."""
        admitted: dict[str, tuple[list[Row], list[str]]] = {}
        blocked: set[str] = set()
        for row in list(self._waiting):
            if row.cancelled.is_set():  # its client is gone
                self._remove(row)
                continue
            try:
                base_dir, _ = _placement(row.key)
                if base_dir in blocked:
                    continue
                rows, names = admitted.setdefault(base_dir, ([], []))
                running = self._running.get(base_dir)
                reserved = [live.reserved for live in running.rows] if running else []
                reserved += [len(r.prompt) + r.sampling.max_new_tokens for r in (*rows, row)]
                if not self._fits(reserved):
                    blocked.add(base_dir)
                    continue
                loaded = self._load(row.key, self._busy(admitted))
            except Exception as e:  # noqa: BLE001 - e.g. an adapter folder that is gone
                log.warning("chat row for %s failed to load: %s: %s", row.key,
                            type(e).__name__, e)
                self._remove(row)
                _fail(row, e)
                continue
            if loaded is None:
                blocked.add(base_dir)
                continue
            self._remove(row)
            rows.append(row)
            names.append(loaded[2])
        return {b: v for b, v in admitted.items() if v[0]}

    def _fits(self, reserved: list[int]) -> bool:
        """Whether a batch of rows needing at most `reserved` tokens each stays within the
        limits: the padded cache holds (rows x longest row) tokens. One row always fits (the
        route caps a request at `max_batch_tokens`), else it could never run."""
        rows = len(reserved)
        return rows == 1 or (rows <= self.max_batch
                             and rows * max(reserved) <= self.max_batch_tokens)

    def _busy(self, admitted: dict) -> set[str]:
        """Bases and adapter names that rows run on or are being admitted to."""
        busy = set(self._running) | set(admitted)
        for batch in self._running.values():
            busy |= batch.adapters()
        for _, names in admitted.values():
            busy |= set(names)
        return busy

    def _remove(self, row: Row) -> None:
        with self._ready:
            self._waiting.remove(row)

    # ---- static batching (the earlier engine) ---------------------------------------------

    def _loop_static(self) -> None:
        concurrent = False
        while True:
            batch = [self._take(None)]
            held = []
            # Everything waiting for the same model and, while several clients are busy (the
            # last batch had more than one row), what arrives within `gather_s`: a client that
            # sends its next request as soon as its last answer arrives would otherwise meet a
            # batch started a few milliseconds earlier with one row, and wait for all of it. A
            # lone client never waits.
            deadline = time.monotonic() + (self.gather_s if concurrent else 0.0)
            while len(batch) < self.max_batch:
                row = self._take(max(0.0, deadline - time.monotonic()))
                if row is None:
                    break
                (batch if row.key == batch[0].key else held).append(row)
            with self._ready:
                self._waiting.extendleft(reversed(held))  # they keep their place
            concurrent = len(batch) > 1
            batch = [row for row in batch if not row.cancelled.is_set()]  # clients gone
            if not batch:
                continue
            try:
                self._run(batch)
            except Exception as e:
                log.exception("batch of %d rows for %s failed", len(batch), batch[0].key)
                for row in batch:
                    _deliver(row, e)

    def _run(self, batch: list[Row]) -> None:
        model, tok, name = self._load(batch[0].key)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        started: set[int] = set()

        def on_step(step: Step) -> bool:
            row = batch[step.row]
            started.add(step.row)
            row.deliver(step)  # raises when the client's event loop is gone: on_error ends it
            return row.cancelled.is_set()

        def on_error(index: int, e: Exception) -> None:
            log.warning("chat row failed alone: %s: %s", type(e).__name__, e)
            _fail(batch[index], e)

        from contextlib import nullcontext

        context = nullcontext()
        if name != BASE:
            model.set_adapter(name)
        elif hasattr(model, "disable_adapter"):
            context = model.disable_adapter()
        try:
            with context:
                decode_rows(model, [r.prompt for r in batch], [r.sampling for r in batch],
                            stop_ids(tok, model), pad, on_step, on_error)
        except Exception:
            if len(batch) == 1 or started:
                raise
            # The shared pass failed before any row got a token: run each row alone, so only
            # the row at fault gets the error.
            log.warning("a batch of %d rows failed; retrying each alone", len(batch))
            for row in batch:
                try:
                    self._run([row])
                except Exception as e:  # noqa: BLE001 - delivered to its own row
                    _deliver(row, e)


@functools.lru_cache(maxsize=256)
def _placement(key: str) -> tuple[str, str | None]:
    """(base model folder, adapter folder or None) of a model key; converts an embedded GGUF
    the first time."""
    ref = resolve_model(key)
    if not ref.is_adapter:  # keyed by folder: the alias and its folder are one model
        return model_dir(ref), None
    return adapter_base(Path(ref.source), None), key


def _fail(row: Row, e: Exception) -> None:
    """End one row with its own error."""
    log.warning("chat row failed alone: %s: %s", type(e).__name__, e)
    row.cancelled.set()
    _deliver(row, e)


def _deliver(row: Row, item) -> None:
    """Hand `item` to a row's client; a client that is gone is not an error."""
    try:
        row.deliver(item)
    except Exception:  # noqa: BLE001 - the client's event loop has closed
        row.cancelled.set()


def adapter_name(folder: str) -> str:
    """PEFT names adapters by module-dict keys, which cannot hold dots or slashes."""
    return "a" + hashlib.sha1(folder.encode()).hexdigest()[:16]


def queue_for(loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Queue, object]:
    """An asyncio queue and a thread-safe `deliver` callable that feeds it."""
    q: asyncio.Queue = asyncio.Queue()

    def deliver(item) -> None:
        loop.call_soon_threadsafe(q.put_nowait, item)

    return q, deliver
