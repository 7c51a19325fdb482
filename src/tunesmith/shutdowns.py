"""When a hosted base model stops answering (and every model fine-tuned from it): a dated table
shipped as data (`shutdowns.yaml`), each entry with its source and notice date.

    ft:gpt-4o-mini-2024-07-18:acme:support:9xK2  ->  base gpt-4o-mini-2024-07-18
                                                 ->  entry gpt-4o-mini (longest matching prefix)
                                                 ->  2027-01-14, N days from today

A base the table does not name has no date ("date unknown"), never a guess.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from tunesmith.errors import UnusableInputError


@dataclass(frozen=True)
class Shutdown:
    base: str
    """The table's entry (a prefix of model ids)."""
    date: dt.date
    notice: dt.date | None
    source: str
    note: str = ""

    def days_left(self, today: dt.date | None = None) -> int:
        """Days until the shutdown (negative: it has passed)."""
        return (self.date - (today or dt.date.today())).days


@dataclass(frozen=True)
class ShutdownTable:
    models: dict[str, Shutdown]
    jobs_end: Shutdown | None
    """The day new fine-tuning jobs stop, for every base."""
    as_of: str
    path: str

    def lookup(self, base: str) -> Shutdown | None:
        """The entry for `base` (a model id): its longest matching prefix, at a word boundary
        (`gpt-4o` does not cover `gpt-4o-mini-...` when `gpt-4o-mini` is in the table)."""
        matches = [key for key in self.models
                   if base == key or base.startswith(key + "-")]
        return self.models[max(matches, key=len)] if matches else None


def base_of(model_id: str) -> str:
    """The base model of a fine-tuned id (`ft:BASE:org:suffix:id` -> BASE); other ids as
    they are."""
    if model_id.startswith("ft:"):
        parts = model_id.split(":")
        return parts[1] if len(parts) > 1 and parts[1] else model_id
    return model_id


def load_shutdowns(path: str | Path | None = None) -> ShutdownTable:
    """The shipped table, or the one at `path`.

    Raises:
        UnusableInputError: a file that is not such a table (naming the entry and field).
    """
    where = str(path) if path else "shutdowns.yaml (shipped)"
    try:
        text = (Path(path).read_text("utf-8") if path else
                resources.files("tunesmith").joinpath("shutdowns.yaml").read_text("utf-8"))
        raw = yaml.safe_load(text) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise UnusableInputError(where, f"not a readable YAML file: {e}") from e
    if not isinstance(raw, dict) or not isinstance(raw.get("models", {}), dict):
        raise UnusableInputError(where, "expected a mapping with a 'models' mapping",
                                 field="models")
    models = {str(name): _entry(where, f"models.{name}", str(name), body)
              for name, body in (raw.get("models") or {}).items()}
    jobs = raw.get("fine_tuning_jobs_end")
    return ShutdownTable(models, _entry(where, "fine_tuning_jobs_end", "*", jobs)
                         if jobs else None, str(raw.get("as_of", "")), where)


def _entry(where: str, field: str, base: str, body) -> Shutdown:
    if not isinstance(body, dict):
        raise UnusableInputError(where, f"{field} must be a mapping with shutdown, notice and "
                                 "source", field=field)
    date = body.get("shutdown", body.get("date"))
    try:
        day = _day(date)
        notice = _day(body["notice"]) if body.get("notice") else None
    except (TypeError, ValueError):
        raise UnusableInputError(where, f"{field}: dates are YYYY-MM-DD", field=field) from None
    source = body.get("source")
    if not isinstance(source, str) or not source.startswith(("http://", "https://")):
        raise UnusableInputError(where, f"{field}.source must be the notice's URL",
                                 field=f"{field}.source")
    return Shutdown(base, day, notice, source, str(body.get("note") or ""))


def _day(value) -> dt.date:
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))
