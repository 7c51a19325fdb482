"""Small formatting helpers shared by the subcommands' human-readable output."""

from __future__ import annotations

import json
import sys
from typing import Any


def print_json(document: Any) -> None:
    """The one machine-readable document `--json` promises, on stdout."""
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def table(rows: list[list[str]], header: list[str] | None = None, indent: str = "  ") -> str:
    """A plain aligned text table: numbers right-aligned, text left-aligned."""
    all_rows = ([header] if header else []) + rows
    if not all_rows:
        return ""
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(all_rows[0]))]
    lines = []
    for r in all_rows:
        cells = [c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(r, widths)]
        lines.append(indent + "  ".join(cells).rstrip())
    return "\n".join(lines)


def _numeric(cell: str) -> bool:
    return bool(cell) and cell.lstrip("$-").replace(",", "").replace(".", "").rstrip("%x").isdigit()
