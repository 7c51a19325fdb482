"""The chat engine: loads models on demand and runs chat requests in batches on one thread.

Requests for the same model that wait together run as one batch (`generation.decode_rows`), each
row with its own sampling; tokens reach each request's asyncio queue as they are made, so
streaming and plain responses share one path.

LoRA models share their base's weights: the base is loaded once (bf16 where the hardware is
fast at it) and each fine-tuned model or checkpoint is a named adapter on it, switched per batch
(`disable_adapter()` for the base itself). A full fine-tune is a model of its own.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.data.render import render
from tunesmith.generation import Sampling, Step, decode_rows, stop_ids
from tunesmith.modeling import (
    adapter_base,
    load_for_inference,
    load_tokenizer,
    model_dir,
    resolve_model,
)

log = logging.getLogger(__name__)


@dataclass
class Row:
    """One choice of one request, queued for the engine thread."""

    key: str
    """Which loaded model runs it (a model spec or adapter folder)."""
    prompt: list[int]
    sampling: Sampling
    deliver: object
    """Called (from the engine thread) with each Step, or with an Exception."""
    cancelled: threading.Event = field(default_factory=threading.Event)


class Engine:
    """Runs chat rows; `submit` from any thread or event loop.

    One row can never fail another: a row's own failure (its sampling, its delivery to a client
    that is gone) ends that row only, and when the shared batched pass fails before any token,
    each row is retried alone so the failure stays with the row that caused it.
    """

    def __init__(self, max_batch: int = 16, max_loaded: int = 4, *, start: bool = True,
                 gather_s: float = 0.02) -> None:
        self.max_batch, self.max_loaded, self.gather_s = max_batch, max_loaded, gather_s
        self._queue: queue.Queue[Row] = queue.Queue()
        self._bases: OrderedDict[str, tuple] = OrderedDict()  # base folder -> (model, tokenizer)
        self._adapters: dict[str, str] = {}  # adapter folder -> base folder it is loaded on
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="tunesmith-engine", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        """Start running rows (an engine made with `start=False` only queues them: tests use it
        to make rows wait together)."""
        self._thread.start()

    def waiting(self) -> int:
        """Rows queued and not yet running."""
        return self._queue.qsize()

    # ---- models ---------------------------------------------------------------------------

    def tokenizer(self, key: str):
        return load_tokenizer(key)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - the engine lives as long as the server
    def context_length(self, key: str) -> int:
        """From the model's config alone: loading weights is the engine thread's job only (a
        PEFT adapter must not be added while a batch runs on the same base)."""
        from transformers import AutoConfig

        ref = resolve_model(key)
        where = adapter_base(Path(ref.source), None) if ref.is_adapter else model_dir(ref)
        config = AutoConfig.from_pretrained(where)
        return int(getattr(config, "max_position_embeddings", 2048) or 2048)

    def _model(self, key: str):
        """(model ready to run `key`, tokenizer); loads what is missing."""
        with self._lock:
            ref = resolve_model(key)
            if not ref.is_adapter:  # keyed by folder: the alias and its folder are one model
                return self._base(model_dir(ref))
            base_dir = adapter_base(Path(ref.source), None)
            model, tok = self._base(base_dir)
            if key not in self._adapters:
                from peft import PeftModel

                dtype = next(model.parameters()).dtype
                name = adapter_name(key)
                if isinstance(model, PeftModel):
                    model.load_adapter(key, adapter_name=name)
                else:
                    model = PeftModel.from_pretrained(model, key, adapter_name=name)
                    self._bases[base_dir] = (model, tok)
                for param_name, p in model.named_parameters():
                    if f".{name}." in param_name:
                        p.data = p.data.to(dtype)
                model.requires_grad_(True)  # see load_for_inference: keeps matmuls fast
                self._adapters[key] = base_dir
            return model, tok

    def _base(self, key: str):
        if key in self._bases:
            self._bases.move_to_end(key)
            return self._bases[key]
        if len(self._bases) >= self.max_loaded:
            evicted, _ = self._bases.popitem(last=False)
            self._adapters = {a: b for a, b in self._adapters.items() if b != evicted}
        self._bases[key] = load_for_inference(key)
        return self._bases[key]

    def render(self, key: str, messages: list[dict], tools: list[dict] | None = None
               ) -> list[int]:
        tok = self.tokenizer(key)
        text = render(tok, [messages], add_generation_prompt=True, tools=tools)[0]
        return tok(text, add_special_tokens=False)["input_ids"]

    # ---- running --------------------------------------------------------------------------

    def submit(self, row: Row) -> None:
        self._queue.put(row)

    def _loop(self) -> None:
        concurrent = False
        while True:
            batch = [self._queue.get()]
            held = []
            # Everything waiting for the same model and, while several clients are busy (the
            # last batch had more than one row), what arrives within `gather_s`: a client that
            # sends its next request as soon as its last answer arrives would otherwise meet a
            # batch started a few milliseconds earlier with one row, and wait for all of it. A
            # lone client never waits.
            deadline = time.monotonic() + (self.gather_s if concurrent else 0.0)
            while len(batch) < self.max_batch:
                try:
                    row = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                (batch if row.key == batch[0].key else held).append(row)
            for row in held:
                self._queue.put(row)
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
        model, tok = self._model(batch[0].key)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        started: set[int] = set()

        def on_step(step: Step) -> bool:
            row = batch[step.row]
            started.add(step.row)
            row.deliver(step)  # raises when the client's event loop is gone: on_error ends it
            return row.cancelled.is_set()

        def on_error(index: int, e: Exception) -> None:
            log.warning("chat row failed alone: %s: %s", type(e).__name__, e)
            batch[index].cancelled.set()
            _deliver(batch[index], e)

        from contextlib import nullcontext

        adapter = batch[0].key if batch[0].key in self._adapters else None
        context = nullcontext()
        if adapter is not None:
            model.set_adapter(adapter_name(adapter))
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
