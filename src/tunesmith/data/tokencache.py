"""Tokenize a data set once, fast, and keep the tokens as arrays on disk.

`tokenize_many` renders each example's pieces with the chat template (the same pieces as
`tokenize_example`), encodes all pieces of all examples in batched calls of the Rust tokenizer,
and stores every token of the data set in one int32 array (ids and labels: 8 bytes a token,
where Python lists of ints take ~44). The arrays are cached under
`$TUNESMITH_HOME/cache/tokens/<key>/`, the key hashing the data file's bytes, the tokenizer's
vocabulary and chat template, the system prompt and `max_seq_len`; a second run or a `--resume`
maps them from disk instead of tokenizing again.

    cache/tokens/<key>/ids.npy  labels.npy  (all tokens, int32)
                       offsets.npy (n+1, int64)  truncated.npy (n, bool)
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from tunesmith.atomic import atomic_dir
from tunesmith.data.examples import Example
from tunesmith.data.render import IGNORE_INDEX, Tokenized, chat_template, pieces_of
from tunesmith.home import tunesmith_home

log = logging.getLogger(__name__)

VERSION = "1"
"""Bumped when the way tokens are made changes: older cache entries are then never read."""
BATCH = 8192
"""Pieces encoded per call of the tokenizer."""
CHUNK = 8192
"""Examples rendered and encoded at a time (bounds the Python lists alive at once)."""


def tokenize_many(tokenizer, examples: list[Example], max_seq_len: int,
                  source: str | Path | None = None, system: str | None = None) -> list[Tokenized]:
    """`tokenize_example` for every example, batched, as views into shared arrays; cached when
    `source` (the data file the examples were read from) is given."""
    folder = _cache_dir(tokenizer, source, max_seq_len, system) if source else None
    if folder is not None and (folder / "offsets.npy").is_file():
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r")
                  for name in ("ids", "labels", "offsets", "truncated")}
        if len(arrays["truncated"]) == len(examples):
            log.info("tokens of %d examples read from the cache (%s)", len(examples), folder.name)
            return _items(arrays)
    arrays = _tokenize(tokenizer, examples, max_seq_len)
    if folder is not None:
        try:
            with atomic_dir(folder) as tmp:
                for name, value in arrays.items():
                    np.save(tmp / f"{name}.npy", value)
        except OSError as e:  # a full or read-only disk: train anyway
            log.warning("could not cache the tokens in %s: %s", folder, e)
    return _items(arrays)


def _tokenize(tokenizer, examples: list[Example], max_seq_len: int) -> dict[str, np.ndarray]:
    """All examples' tokens, chunk by chunk: Python lists of ints exist for one chunk only."""
    encode = None
    ids, labels, kept, truncated = [], [], [], []
    for first in range(0, len(examples), CHUNK):
        pieces = [pieces_of(tokenizer, e) for e in examples[first:first + CHUNK]]
        texts = [text for p in pieces for text, _ in p]
        encode = encode or _encoder(tokenizer, texts[:64])
        encoded = [x for i in range(0, len(texts), BATCH) for x in encode(texts[i:i + BATCH])]
        sizes = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        flat = np.fromiter((t for x in encoded for t in x), dtype=np.int32,
                           count=int(sizes.sum()))
        del encoded
        trained = np.repeat(np.fromiter((t for p in pieces for _, t in p), dtype=bool,
                                        count=len(texts)), sizes)
        owner = np.repeat(np.arange(len(pieces)), [len(p) for p in pieces])  # example of a piece
        per_example = np.bincount(owner, weights=sizes, minlength=len(pieces)).astype(np.int64)
        starts = np.r_[0, np.cumsum(per_example)[:-1]]
        position = np.arange(len(flat)) - np.repeat(starts, per_example)  # index in its example
        keep = position < max_seq_len  # truncate each example on the right
        ids.append(flat[keep])
        labels.append(np.where(trained, flat, np.int32(IGNORE_INDEX)).astype(np.int32)[keep])
        kept.append(np.minimum(per_example, max_seq_len))
        truncated.append(per_example > max_seq_len)
    kept_all = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    return {"ids": np.concatenate(ids) if ids else np.zeros(0, dtype=np.int32),
            "labels": np.concatenate(labels) if labels else np.zeros(0, dtype=np.int32),
            "offsets": np.r_[0, np.cumsum(kept_all)].astype(np.int64),
            "truncated": np.concatenate(truncated) if truncated else np.zeros(0, dtype=bool)}


def _encoder(tokenizer, sample: list[str]):
    """Batch encoding: the Rust tokenizer's `encode_batch_fast` (no offsets: ~1.6x faster than
    the transformers wrapper) where it gives the wrapper's ids on `sample`, else the wrapper."""
    def wrapper(texts: list[str]) -> list[list[int]]:
        return tokenizer(texts, add_special_tokens=False)["input_ids"]

    backend = getattr(tokenizer, "_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch_fast"):
        return wrapper

    def fast(texts: list[str]) -> list[list[int]]:
        return [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=False)]

    return fast if fast(sample) == wrapper(sample) else wrapper


def _items(arrays: dict[str, np.ndarray]) -> list[Tokenized]:
    ids, labels, offsets = arrays["ids"], arrays["labels"], arrays["offsets"]
    return [Tokenized(ids[a:b], labels[a:b], bool(t))
            for a, b, t in zip(offsets[:-1].tolist(), offsets[1:].tolist(),
                               arrays["truncated"].tolist())]


def _cache_dir(tokenizer, source: str | Path, max_seq_len: int, system: str | None) -> Path:
    h = hashlib.sha256(f"v{VERSION}|{max_seq_len}|{system or ''}|".encode())
    with open(source, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(_tokenizer_key(tokenizer).encode())
    return tunesmith_home() / "cache" / "tokens" / h.hexdigest()[:24]


def _tokenizer_key(tokenizer) -> str:
    """What makes the tokenizer's output what it is: its vocabulary and rules, special tokens and
    chat template."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    parts = [body, chat_template(tokenizer), repr(tokenizer.all_special_tokens)]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()
