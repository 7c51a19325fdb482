"""The web page: `/` and its two assets under `/static/`, served without a key.

They hold no data. The page's script signs in with an API key and calls the same public `/v1`
API as any client, so a key sees only its project. Left out of the OpenAPI schema: the page is
not part of the API (and the schema fuzzing counts API operations only).
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

router = APIRouter(include_in_schema=False)

PAGE = files("tunesmith.serve.web")
ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
"""The only files served under /static/: a fixed list, so no name reaches the disk."""
HEADERS = {
    # Everything comes from this server, and no inline script runs: a server string that slips
    # into the DOM as markup still cannot execute or load anything from elsewhere.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@router.get("/")
def index() -> Response:
    return Response(PAGE.joinpath("index.html").read_bytes(), media_type="text/html; charset=utf-8",
                    headers=HEADERS)


@router.get("/static/{name}")
def asset(name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(404)  # answered like any unknown URL
    return Response(PAGE.joinpath(name).read_bytes(), media_type=ASSETS[name], headers=HEADERS)
