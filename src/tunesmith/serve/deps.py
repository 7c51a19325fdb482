"""What routes get injected: the settings, the store, the engine and the caller's project."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from tunesmith.errors import UsageError
from tunesmith.jobs.store import JobStore
from tunesmith.modeling import DEFAULT_MODEL
from tunesmith.serve.engine import Engine
from tunesmith.serve.errors import APIError

DEFAULT_PROJECT = "default"


@dataclass
class ServeSettings:
    home: Path
    """Files, runs, models and the database live here."""
    keys: dict[str, str] | None = None
    """API key -> project. None: no authentication, every caller is project `default`."""
    max_upload_bytes: int = 512 * 1024 * 1024
    base_models: list[str] = field(default_factory=lambda: [DEFAULT_MODEL])
    """Base models listed by /v1/models and callable by every project."""


def read_keys(path: str | Path) -> dict[str, str]:
    """A keys file: one `KEY PROJECT` pair per line; blank lines and `#` comments skipped.

    Raises:
        UsageError: the file is missing or a line is not two fields.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"keys file {path}: no such file.")
    keys = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise UsageError(f"{path}:{number}: expected `KEY PROJECT`, found {len(parts)} fields.")
        keys[parts[0]] = parts[1]
    if not keys:
        raise UsageError(f"keys file {path}: holds no key.")
    return keys


def _settings(request: Request) -> ServeSettings:
    return request.app.state.settings


def _store(request: Request) -> JobStore:
    return request.app.state.store


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _project(request: Request) -> str:
    keys = request.app.state.settings.keys
    if keys is None:
        return DEFAULT_PROJECT
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise APIError(401, "You didn't provide an API key. Provide it in an Authorization "
                       "header as 'Bearer YOUR_KEY'.", code="missing_api_key")
    project = keys.get(key.strip())
    if project is None:
        raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
    return project


SettingsDep = Annotated[ServeSettings, Depends(_settings)]
StoreDep = Annotated[JobStore, Depends(_store)]
EngineDep = Annotated[Engine, Depends(_engine)]
ProjectDep = Annotated[str, Depends(_project)]
