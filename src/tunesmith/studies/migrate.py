"""Replacing a fine-tuned model before its provider retires it.

    inventory   every fine-tuned model and job an API key can see, with the date its base model
                stops answering (shutdowns.yaml) and the days left; optionally each job's
                training and validation files downloaded and checked
    record      how a fine-tuned model answers the team's real inputs, kept for good: a chat
                JSONL golden set (the recorded answer as the assistant turn), every full answer,
                and what it cost (`recording.py`)

After the shutdown nobody can ask the model anything again, so the recording is what the
comparison (`compare --incumbent`) and the distillation (`--teacher`) work from.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tunesmith.atomic import atomic_open, write_text
from tunesmith.data.check import check_file
from tunesmith.endpoints.account import Account
from tunesmith.endpoints.spec import Endpoint
from tunesmith.outputs import check_parent
from tunesmith.shutdowns import ShutdownTable, base_of


@dataclass
class FineTune:
    """One fine-tuned model (or a job that has not made one yet) and when it dies."""

    model: str | None
    """The `ft:` id clients call; None for a job without a model (running, failed)."""
    base: str
    """The base model it was trained from (what its retirement follows)."""
    suffix: str | None = None
    created: int | None = None
    job: str | None = None
    job_status: str | None = None
    hyperparameters: dict = field(default_factory=dict)
    method: str | None = None
    training_file: str | None = None
    validation_file: str | None = None
    trained_tokens: int | None = None
    shutdown: str | None = None
    """YYYY-MM-DD, or None: the table does not name the base ("date unknown")."""
    days_left: int | None = None
    shutdown_source: str | None = None
    shutdown_notice: str | None = None
    downloads: dict = field(default_factory=dict)
    """`training_file` / `validation_file` -> {"path", "check": {...}} or {"missing": why}."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Inventory:
    endpoint: str
    today: str
    fine_tunes: list[FineTune]
    jobs_end: dict | None
    """When new fine-tuning jobs stop (the table's `fine_tuning_jobs_end`)."""
    shutdowns: str
    """Which shutdown table was used."""

    def to_dict(self) -> dict:
        return {"endpoint": self.endpoint, "today": self.today, "shutdowns": self.shutdowns,
                "jobs_end": self.jobs_end,
                "fine_tunes": [f.to_dict() for f in self.fine_tunes]}


def inventory(endpoint: Endpoint, table: ShutdownTable, today: dt.date | None = None) -> Inventory:
    """Every fine-tuned model (`ft:` ids in models.list) and every fine-tuning job the key can
    see, joined on the model id, most urgent first (the fewest days left; unknown dates last).

    Raises:
        EndpointError: the endpoint cannot be reached or refuses the key (exit 2).
    """
    today = today or dt.date.today()
    account = Account(endpoint)
    models = {m.id: m for m in account.models() if m.id.startswith("ft:")}
    rows: dict[str, FineTune] = {}
    for job in account.jobs():
        name = job.get("fine_tuned_model")
        method = job.get("method") or {}
        kind = method.get("type")
        hp = (method.get(kind) or {}).get("hyperparameters") if kind else None
        row = FineTune(
            model=name, base=job.get("model") or (base_of(name) if name else "?"),
            suffix=job.get("suffix"), created=job.get("created_at"), job=job.get("id"),
            job_status=job.get("status"), hyperparameters=hp or job.get("hyperparameters") or {},
            method=kind, training_file=job.get("training_file"),
            validation_file=job.get("validation_file"), trained_tokens=job.get("trained_tokens"))
        rows[name or f"job:{job.get('id')}"] = row
    for name, remote in models.items():  # fine-tunes whose job the key does not list
        if name in rows:
            rows[name].created = remote.created or rows[name].created
        else:
            parts = name.split(":")
            rows[name] = FineTune(model=name, base=base_of(name), created=remote.created,
                                  suffix=parts[3] if len(parts) > 3 and parts[3] else None)
    for row in rows.values():
        entry = table.lookup(base_of(row.base))
        if entry is not None:
            row.shutdown, row.days_left = entry.date.isoformat(), entry.days_left(today)
            row.shutdown_source = entry.source
            row.shutdown_notice = entry.notice.isoformat() if entry.notice else None
    ordered = sorted(rows.values(), key=lambda r: (r.days_left is None, r.days_left or 0,
                                                   r.model or ""))
    jobs_end = None if table.jobs_end is None else {
        "date": table.jobs_end.date.isoformat(), "days_left": table.jobs_end.days_left(today),
        "source": table.jobs_end.source}
    return Inventory(endpoint.base_url, today.isoformat(), ordered, jobs_end, table.path)


def download(endpoint: Endpoint, found: Inventory, folder: Path) -> None:
    """Save each job's JSON and its training and validation files under FOLDER/JOB/, and run
    `data check` on each file; a file the API no longer returns is listed as missing.

    Raises:
        UsageError: FOLDER cannot be made.
    """
    check_parent(folder, "--download")
    account = Account(endpoint)
    jobs = {j["id"]: j for j in account.jobs()}
    for row in found.fine_tunes:
        if row.job is None:
            continue
        where = folder / row.job
        write_text(where / "job.json", json.dumps(jobs.get(row.job, {}), indent=2) + "\n")
        for param, name in (("training_file", "training.jsonl"),
                            ("validation_file", "validation.jsonl")):
            file_id = getattr(row, param)
            if not file_id:
                continue
            content = account.file_content(file_id)
            if content is None:
                row.downloads[param] = {"file": file_id, "missing": "the API no longer returns "
                                        "this file (404)"}
                continue
            path = where / name
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(path, content)
            report = check_file(path)
            row.downloads[param] = {
                "file": file_id, "path": str(path), "bytes": len(content),
                "check": {"examples": report.examples, "errors": len(report.errors),
                          "warnings": len(report.warnings), "ok": report.ok,
                          "first_errors": [i.render(str(path)) for i in report.errors[:3]]}}


def write_bytes(path: Path, content: bytes) -> None:
    """All or nothing, like every file tunesmith writes."""
    with atomic_open(path, "wb") as f:
        f.write(content)
