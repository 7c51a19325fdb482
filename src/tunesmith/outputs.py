"""Where commands may write: never over one of their inputs, never into someone else's folder.

Every command that writes a folder checks it first, before any work:

    data prepare raw.jsonl --out d     d is new, empty, or a folder `prepare` made (has task.json);
                                       a folder of other files needs --force; an output that IS
                                       the input (d/train.jsonl) is refused even with --force
    train --out r                      r is new, empty, or a run (has config.yaml: --resume)
    compare --out rep                  rep is new, empty, or a report folder compare made
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tunesmith.errors import UsageError


def check_parent(path: str | Path, flag: str) -> Path:
    """Refuse a path whose nearest existing ancestor is a file (`--out notes.txt/run`).

    Raises:
        UsageError: an existing ancestor of `path` is not a folder.
    """
    path = Path(path)
    for ancestor in path.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise UsageError(f"{flag} {path}: {ancestor} is a file, not a folder.")
            break
    return path


def claim_dir(path: str | Path, *, flag: str = "--out", owned: Iterable[str] = (),
              force: bool | None = None) -> Path:
    """Check that a command may write its outputs into the folder `path`.

    Args:
        path: the output folder (need not exist).
        flag: the option that named it, for messages.
        owned: files (relative to `path`) whose presence marks a folder this command wrote
            before: such a folder may be written again.
        force: None when the command has no --force (a folder of other files is always
            refused); else whether the user passed --force.

    Raises:
        UsageError: `path` is a file, lies under a file, or is a non-empty folder of other files.
    """
    path = check_parent(path, flag)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file; give a folder.")
    if not path.is_dir():
        return path
    others = sorted(p.name for p in path.iterdir()
                    if not (p.name.startswith(".") and p.name.endswith(".tmp")))
    if not others or any((path / name).exists() for name in owned) or force:
        return path
    shown = ", ".join(others[:4]) + (", ..." if len(others) > 4 else "")
    hint = " or pass --force to write beside them" if force is False else ""
    raise UsageError(f"{flag} {path} already holds files tunesmith did not write ({shown}); "
                     f"choose a new or empty folder{hint}.")


def check_not_input(outputs: Iterable[str | Path], inputs: Iterable[str | Path | None],
                    flag: str = "--out") -> None:
    """Refuse outputs that would replace an input, or remove a folder holding one.

    Raises:
        UsageError: an output path is one of the inputs, or contains one.
    """
    resolved = [(Path(i), _real(i)) for i in inputs if i]
    for out in outputs:
        target = _real(out)
        for given, real in resolved:
            if real == target or target in real.parents:
                raise UsageError(f"{flag}: writing {out} would overwrite the input {given}; "
                                 f"choose another {flag}.")


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))
