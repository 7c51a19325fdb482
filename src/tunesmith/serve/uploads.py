"""Multipart uploads streamed straight to disk with a size cap.

Starlette's own form parsing spools a whole file to a temporary file before the route sees it,
so a 2 GB upload would fill the disk before any limit applied. Here the body is parsed as it
arrives: file bytes go to a temporary file under the service home, and the upload is refused the
moment it passes the cap (or at once, when Content-Length already says it will).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from tunesmith.serve.errors import APIError

FIELD_LIMIT = 4096
"""Bytes allowed in a non-file form field (`purpose`)."""


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    path: Path | None = None
    """The temporary file holding the upload's bytes (the caller moves or deletes it)."""
    size: int = 0


async def receive_upload(request: Request, tmp_dir: Path, limit: int) -> Upload:
    """Parse a multipart/form-data body with one file part named `file`.

    Raises:
        APIError: 400 for a malformed body, 413 past `limit` bytes.
    """
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or b"boundary" not in options:
        raise APIError(400, "Expected a multipart/form-data body with a `file` part.",
                       param="file", code="invalid_body")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise _too_large(limit)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    upload = Upload()
    state: dict = {"headers": {}, "name": None, "buffer": bytearray(), "out": None, "field": b""}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        key = state["field"].decode("latin-1").lower()
        state["headers"][key] = state["headers"].get(key, b"") + data[start:end]

    def on_header_end() -> None:
        state["field"] = b""

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(state["headers"].get("content-disposition", b""))
        state["name"] = disposition.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in disposition:
            if state["name"] != "file" or upload.path is not None:
                raise APIError(400, "Only one file part, named `file`, is accepted.",
                               param="file", code="invalid_body")
            upload.filename = clean_filename(disposition[b"filename"].decode("utf-8",
                                                                             "replace"))
            handle, name = tempfile.mkstemp(dir=tmp_dir, suffix=".upload")
            upload.path = Path(name)
            state["out"] = os.fdopen(handle, "wb")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["out"] is not None:
            upload.size += end - start
            if upload.size > limit:
                raise _too_large(limit)
            state["out"].write(data[start:end])
        else:
            state["buffer"] += data[start:end]
            if len(state["buffer"]) > FIELD_LIMIT:
                raise APIError(400, f"Form field {state['name']!r} is too long.",
                               param=state["name"], code="invalid_body")

    def on_part_end() -> None:
        if state["out"] is not None:
            state["out"].close()
            state["out"] = None
        elif state["name"]:
            upload.fields[state["name"]] = state["buffer"].decode("utf-8", "replace")
        state.update(headers={}, name=None, buffer=bytearray())

    parser = MultipartParser(options[b"boundary"], {
        "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data, "on_part_end": on_part_end})
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except APIError:
        _discard(upload, state)
        raise
    except Exception as e:  # the multipart parser's own errors: a malformed body
        _discard(upload, state)
        raise APIError(400, f"Malformed multipart body: {e}", param="file",
                       code="invalid_body") from e
    if upload.path is None:
        raise APIError(400, "Missing the `file` part.", param="file", code="invalid_body")
    return upload


def clean_filename(name: str, limit: int = 255) -> str:
    """The last path part of a client's file name, without control characters, at most `limit`
    characters (it is echoed in listings and download headers)."""
    name = os.path.basename(name.replace("\\", "/"))
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:limit] or "upload.jsonl"


def _too_large(limit: int) -> APIError:
    return APIError(413, f"File too large: this server accepts uploads of at most {limit:,} "
                    "bytes (tunesmith serve --max-upload-mb).", param="file",
                    code="file_too_large")


def _discard(upload: Upload, state: dict) -> None:
    if state["out"] is not None:
        state["out"].close()
    if upload.path is not None:
        upload.path.unlink(missing_ok=True)
