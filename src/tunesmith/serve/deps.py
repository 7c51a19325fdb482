"""What routes get injected: the settings, the store, the engine and the caller's project."""

from __future__ import annotations

import re
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
    """Base models listed by /v1/models, callable and fine-tunable by every project."""
    default_max_tokens: int = 512
    """Answer tokens for a chat request that names no `max_tokens` (OpenAI's own default is
    "up to the context", which lets one forgotten parameter hold the engine for minutes)."""
    request_timeout_s: float = 300.0
    """A chat request still generating after this many seconds (queue time included) ends
    with what it has, `finish_reason: "length"`."""
    max_body_bytes: int = 8 * 1024 * 1024
    """JSON request bodies larger than this are refused (413); uploads have their own cap."""
    docs: bool = True
    """Serve /docs and /openapi.json (to anyone: they hold no data, but describe the API)."""


PROJECT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
"""Project names appear inside fine-tuned model ids (`ft:base:project:suffix:id`)."""


def read_keys(path: str | Path) -> dict[str, str]:
    """A keys file: one `KEY PROJECT` pair per line; blank lines and `#` comments skipped.
    A project may have several keys; a key belongs to one project.

    Raises:
        UsageError: the file is missing, a line is not two fields, a project name is not
            letters/digits/`_.-`, or a key is given twice (every problem, with its line).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"keys file {path}: no such file.")
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"keys file {path}: cannot be read as UTF-8 text ({e}).") from e
    keys: dict[str, str] = {}
    first_line: dict[str, int] = {}
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            problems.append(f"{path}:{number}: expected `KEY PROJECT`, found {len(parts)} fields")
            continue
        key, project = parts
        if not PROJECT.match(project):
            problems.append(f"{path}:{number}: project {project!r} must be 1-64 letters, digits "
                            "or _.-")
        elif key in keys:
            problems.append(f"{path}:{number}: this key is already given on line "
                            f"{first_line[key]}" + (f" to project {keys[key]!r}"
                                                    if keys[key] != project else ""))
        else:
            keys[key], first_line[key] = project, number
    if problems:
        raise UsageError("; ".join(problems) + ".")
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
