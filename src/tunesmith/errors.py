"""The exceptions tunesmith raises on purpose.

Every error a user can cause derives from `TunesmithError`, so the command line can turn it into a
one-line message and an exit code instead of a traceback. Anything else that escapes is a bug.
"""

from __future__ import annotations

from pathlib import Path


class TunesmithError(Exception):
    """Root of tunesmith's errors. `exit_code` follows DESIGN.md: 1 the work failed, 2 bad input."""

    exit_code: int = 1


class UnusableInputError(TunesmithError):
    """The input cannot be used at all: missing, a folder, empty, binary, or of no known format.

    Args:
        path: the file (or folder) concerned.
        message: what is wrong and, where possible, what to do about it.
        line: 1-based line number, when one line decides it.
        field: the field or column concerned, when one does.
    """

    exit_code = 2

    def __init__(
        self, path: str | Path | None, message: str, *, line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.detail = message
        where = self.path or ""
        if line is not None:
            where += f":{line}"
        prefix = f"{where}: " if where else ""
        if field:
            prefix += f"field '{field}': "
        super().__init__(prefix + message)


class UsageError(TunesmithError):
    """Arguments that contradict each other or name something that does not exist (exit 2)."""

    exit_code = 2


class ModelError(TunesmithError):
    """A model or tokenizer could not be resolved, converted or loaded (exit 2: fix the `--model`)."""

    exit_code = 2


class InvalidDataError(TunesmithError):
    """Checks ran and found errors in the data (exit 1). `issues` holds every one of them."""

    exit_code = 1

    def __init__(self, path: str | Path, issues: list, message: str) -> None:
        self.path = str(path)
        self.issues = issues
        super().__init__(f"{path}: {message}")
