"""A cap on JSON request bodies, applied as they arrive (pure ASGI middleware).

Without it a client could send a gigabyte of JSON to /v1/chat/completions and the server would
hold all of it in memory before validation said no. Uploads (`POST /v1/files`) are exempt: they
stream to disk under their own cap (`serve --max-upload-mb`).
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tunesmith.serve.errors import error_body


class BodyTooLarge(HTTPException):
    """An HTTPException, so FastAPI's body reading passes it through unchanged (it turns other
    exceptions raised while reading into a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body too large: this server accepts at most {limit:,} "
                         "bytes (tunesmith serve --max-body-mb).")


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int, exempt: tuple[str, ...] = ("/v1/files",)) -> None:
        self.app, self.limit, self.exempt = app, limit, exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") in self.exempt:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        e = BodyTooLarge(self.limit)
        await error_body(413, e.detail, None, "request_too_large")(scope, receive, send)
