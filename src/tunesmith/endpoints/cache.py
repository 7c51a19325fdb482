"""Every endpoint response on disk, so a rerun costs nothing and an interrupted run resumes.

    $TUNESMITH_HOME/cache/endpoints/3f/3fa9...e1.json   {"request": {...}, "response": {...}}

The key is a hash of the endpoint's URL, the model and the exact request body: any change to the
prompt, the sampling or the model asks again. The API key is not part of the key, nor stored.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tunesmith.atomic import write_text
from tunesmith.home import tunesmith_home


class ResponseCache:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or tunesmith_home() / "cache" / "endpoints"
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(base_url: str, model: str, request: dict) -> str:
        blob = json.dumps({"base_url": base_url.rstrip("/"), "model": model, "request": request},
                          sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        try:
            response = json.loads(path.read_text("utf-8"))["response"]
        except (OSError, ValueError, KeyError, TypeError):
            self.misses += 1
            return None  # absent, or damaged: ask again
        self.hits += 1
        return response

    def put(self, key: str, request: dict, response: dict) -> None:
        write_text(self._path(key), json.dumps({"request": request, "response": response},
                                               ensure_ascii=False))
