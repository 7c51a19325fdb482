"""`/v1/files`: upload (streamed, size-capped, checked like `tunesmith data check`), list,
retrieve, delete, download."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from tunesmith.data.check import check_file
from tunesmith.data.issues import summarize
from tunesmith.errors import TunesmithError, UnusableInputError
from tunesmith.jobs.models import FileRecord, new_id, now
from tunesmith.jobs.store import JobStore
from tunesmith.serve import objects
from tunesmith.serve.deps import ProjectDep, SettingsDep, StoreDep
from tunesmith.serve.errors import APIError, not_found, ok
from tunesmith.serve.uploads import receive_upload

router = APIRouter(prefix="/v1/files", tags=["files"])

PURPOSES = {"fine-tune", "assistants", "batch", "user_data", "evals", "vision"}
UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file", "purpose"], "properties": {
        "file": {"type": "string", "format": "binary"},
        "purpose": {"type": "string", "enum": sorted(PURPOSES)}}}}}}}
"""The multipart body, parsed by hand as it streams (so FastAPI cannot describe it itself)."""


@router.post("", responses=ok(objects.FileObject), openapi_extra=UPLOAD_BODY)
async def upload_file(request: Request, settings: SettingsDep, store: StoreDep,
                      project: ProjectDep) -> dict:
    upload = await receive_upload(request, settings.home / "tmp", settings.max_upload_bytes)
    purpose = upload.fields.get("purpose", "")
    if purpose not in PURPOSES:
        upload.path.unlink(missing_ok=True)
        raise APIError(400, f"Invalid purpose {purpose!r}: one of {sorted(PURPOSES)}.",
                       param="purpose", code="invalid_value")
    # The checks read the whole file (seconds for a big one): off the event loop, so other
    # clients' requests go on meanwhile.
    details = (await run_in_threadpool(_check, upload.path, upload.filename)
               if purpose == "fine-tune" else None)
    relative = f"files/{secrets.token_hex(16)}.jsonl"
    (settings.home / "files").mkdir(parents=True, exist_ok=True)
    upload.path.rename(settings.home / relative)
    record = FileRecord(new_id("file"), project, upload.filename or "upload.jsonl", purpose,
                        upload.size, now(), relative, "processed", details)
    store.add_file(record)
    return objects.FileObject.of(record).api()


def _check(path, filename) -> str | None:
    """The data checks' verdict on a fine-tuning file: None when valid, else its first errors
    (the job that uses it then fails naming `training_file`). Never the server's path."""
    try:
        report = check_file(path)
    except UnusableInputError as e:
        line = f" line {e.line}:" if e.line else ""
        return f"{filename}:{line} {e.detail}"
    except TunesmithError as e:
        return f"{filename}: {str(e).replace(str(path), filename)}"
    return None if report.ok else summarize(report.errors)


@router.get("", responses=ok(objects.FileList))
def list_files(store: StoreDep, project: ProjectDep, purpose: str | None = None,
               after: str | None = None,
               limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000) -> dict:
    files, more = store.list_files(project, purpose, after, limit)
    data = [objects.FileObject.of(f).api() for f in files]
    return {"object": "list", "data": data, "has_more": more,
            "first_id": files[0].id if files else None,
            "last_id": files[-1].id if files else None}


@router.get("/{file_id}", responses=ok(objects.FileObject))
def retrieve_file(file_id: str, store: StoreDep, project: ProjectDep) -> dict:
    return objects.FileObject.of(_file(store, project, file_id)).api()


@router.delete("/{file_id}", responses=ok(objects.Deleted))
def delete_file(file_id: str, store: StoreDep, project: ProjectDep) -> dict:
    _file(store, project, file_id)
    using = store.active_jobs_using(file_id)
    if using:  # the job would lose its data mid-run (or on its next resume)
        raise APIError(409, f"File {file_id} is used by fine-tuning job {using[0]}, which has not "
                       "finished; cancel the job or wait for it to end, then delete the file.",
                       param="file_id", code="file_in_use")
    store.delete_file(project, file_id)
    return {"id": file_id, "object": "file", "deleted": True}


@router.get("/{file_id}/content", responses={
    200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
def file_content(file_id: str, settings: SettingsDep, store: StoreDep,
                 project: ProjectDep) -> FileResponse:
    record = _file(store, project, file_id)
    return FileResponse(settings.home / record.path, media_type="application/octet-stream",
                        filename=record.filename)


def _file(store: JobStore, project: str, file_id: str) -> FileRecord:
    record = store.get_file(project, file_id)
    if record is None:
        raise not_found("file", file_id)
    return record
