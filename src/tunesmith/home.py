"""Where tunesmith keeps what it makes once and reuses: converted models, the service's store."""

from __future__ import annotations

import os
from pathlib import Path


def tunesmith_home() -> Path:
    """The home folder: `$TUNESMITH_HOME`, else `~/.cache/tunesmith`. Not created here."""
    env = os.environ.get("TUNESMITH_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tunesmith"
