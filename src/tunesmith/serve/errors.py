"""OpenAI's error body for every failure: `{"error": {"message", "type", "param", "code"}}`.

Routes raise `APIError`; validation errors become 400s naming the parameter; unknown routes 404;
anything unexpected a 500 whose message does not leak internals.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error",
         404: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
         500: "server_error", 502: "server_error", 503: "server_error"}


class APIError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def ok(model: type) -> dict:
    """OpenAPI `responses` for a route that answers `model` (errors are declared app-wide)."""
    return {200: {"model": model}}


def not_found(kind: str, ident: str, param: str | None = None) -> APIError:
    return APIError(404, f"No such {kind}: {ident}", param=param, code=f"{kind}_not_found")


def error_body(status: int, message: str, param: str | None, code: str | None) -> JSONResponse:
    # After a 413 the rest of the body is unwanted: closing the connection stops the client
    # from sending it (the server would otherwise read and discard it all).
    headers = {"Connection": "close"} if status == 413 else None
    return JSONResponse(status_code=status, headers=headers, content={"error": {
        "message": message, "type": TYPES.get(status, "invalid_request_error"), "param": param,
        "code": code}})


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api(request: Request, e: APIError) -> JSONResponse:
        return error_body(e.status, e.message, e.param, e.code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        # With a union ("auto" or a number) pydantic reports one error per branch; the
        # number's bound says more than "expected 'auto'".
        found = sorted(e.errors(), key=lambda err: err.get("type") == "literal_error")
        first = found[0] if found else {}
        loc = [str(x) for x in first.get("loc", ())
               if x not in ("body", "query", "path") and not _branch_tag(x)]
        param = ".".join(loc) or None
        message = first.get("msg", "invalid request")
        return error_body(400, f"Invalid value for '{param}': {message}" if param else message,
                          param, "invalid_value")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        message = (f"Invalid URL ({request.method} {request.url.path})" if e.status_code in
                   (404, 405) else str(e.detail))
        return error_body(e.status_code, message, None,
                          "request_too_large" if e.status_code == 413 else None)

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_body(500, "The server had an error while processing your request.", None,
                          "server_error")


_TAGS = {"int", "float", "str", "bool", "list", "dict", "none", "constrained-int",
         "constrained-float", "constrained-str", "function-after", "function-before"}


def _branch_tag(part) -> bool:
    """Union branch names pydantic puts in an error's location (`literal['auto']`, `int`)."""
    return isinstance(part, str) and (part in _TAGS or "[" in part or "'" in part)
