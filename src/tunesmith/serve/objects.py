"""The objects the endpoints return, as OpenAI's API documents them (`openai.types`): the one
definition of each response's shape.

They describe the responses in /openapi.json, so clients and schema-driven tests (schemathesis,
in tests/serve/test_fuzz_api.py) know what comes back, and the routes build every response
from them (`FileObject.of(record).api()`): a record of the store (`jobs/models.py`) becomes the
object OpenAI's API returns for it, checked against its fields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from tunesmith.jobs.models import Checkpoint, FileRecord, Job, ModelRecord
from tunesmith.jobs.models import JobEvent as EventRecord

Auto = Literal["auto"]


class APIObject(BaseModel):
    def api(self) -> dict:
        """The JSON body: every field set (None included), none of the unset optional ones."""
        return self.model_dump(mode="json", exclude_unset=True)


class ErrorDetail(APIObject):
    message: str
    type: str
    """`invalid_request_error`, or `server_error` for a 500."""
    param: str | None
    """The request parameter at fault, when one is."""
    code: str | None


class ErrorResponse(APIObject):
    """Every 4xx/5xx: OpenAI's error body."""

    error: ErrorDetail


class FileObject(APIObject):
    id: str
    object: Literal["file"]
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"]
    status_details: str | None
    """For a `fine-tune` file with problems: the data checks' first errors, with lines."""
    expires_at: int | None

    @classmethod
    def of(cls, r: FileRecord) -> FileObject:
        return cls(id=r.id, object="file", bytes=r.bytes, created_at=r.created_at,
                   filename=r.filename, purpose=r.purpose, status=r.status,
                   status_details=r.status_details, expires_at=None)


class FileList(APIObject):
    object: Literal["list"]
    data: list[FileObject]
    has_more: bool
    first_id: str | None
    last_id: str | None


class Deleted(APIObject):
    id: str
    object: Literal["file", "model"]
    deleted: bool


class Hyperparameters(APIObject):
    n_epochs: Auto | int
    batch_size: Auto | int
    learning_rate_multiplier: Auto | float
    beta: Auto | float | None = None
    """DPO jobs only."""


class JobError(APIObject):
    code: str
    message: str
    param: str | None


class SupervisedMethod(APIObject):
    hyperparameters: Hyperparameters


class Method(APIObject):
    type: Literal["supervised", "dpo"]
    supervised: SupervisedMethod | None = None
    dpo: SupervisedMethod | None = None
    """The same shape: {"hyperparameters": {..., "beta"}}."""


class FineTuningJob(APIObject):
    id: str
    object: Literal["fine_tuning.job"]
    created_at: int
    finished_at: int | None
    model: str
    fine_tuned_model: str | None
    organization_id: str
    """The caller's project."""
    status: Literal["validating_files", "queued", "running", "paused", "succeeded", "failed",
                    "cancelled"]
    hyperparameters: Hyperparameters
    training_file: str
    validation_file: str | None
    result_files: list[str]
    trained_tokens: int | None
    error: JobError | None
    seed: int
    suffix: str | None
    metadata: dict[str, str] | None
    estimated_finish: int | None
    integrations: list
    method: Method

    @classmethod
    def of(cls, job: Job) -> FineTuningJob:
        hp = job.hyperparameters
        return cls(
            id=job.id, object="fine_tuning.job", created_at=job.created_at,
            finished_at=job.finished_at, model=job.model, fine_tuned_model=job.fine_tuned_model,
            organization_id=job.project, status=job.status, hyperparameters=hp,
            training_file=job.training_file, validation_file=job.validation_file,
            result_files=job.result_files, trained_tokens=job.trained_tokens, error=job.error,
            seed=job.seed, suffix=job.suffix, metadata=job.metadata,
            estimated_finish=job.estimated_finish, integrations=job.integrations,
            method={"type": job.method, job.method: {"hyperparameters": hp}})


class JobList(APIObject):
    object: Literal["list"]
    data: list[FineTuningJob]
    has_more: bool


class JobEvent(APIObject):
    id: str
    object: Literal["fine_tuning.job.event"]
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"]
    data: dict

    @classmethod
    def of(cls, e: EventRecord) -> JobEvent:
        return cls(id=e.id, object="fine_tuning.job.event", created_at=e.created_at,
                   level=e.level, message=e.message, type=e.type, data=e.data or {})


class EventList(APIObject):
    object: Literal["list"]
    data: list[JobEvent]
    has_more: bool


class JobCheckpoint(APIObject):
    id: str
    object: Literal["fine_tuning.job.checkpoint"]
    created_at: int
    fine_tuning_job_id: str
    fine_tuned_model_checkpoint: str
    """A model id callable in chat completions."""
    step_number: int
    metrics: dict

    @classmethod
    def of(cls, c: Checkpoint) -> JobCheckpoint:
        return cls(id=c.id, object="fine_tuning.job.checkpoint", created_at=c.created_at,
                   fine_tuning_job_id=c.job_id, fine_tuned_model_checkpoint=c.model_id,
                   step_number=c.step, metrics=c.metrics)


class CheckpointList(APIObject):
    object: Literal["list"]
    data: list[JobCheckpoint]
    has_more: bool
    first_id: str | None
    last_id: str | None


class Model(APIObject):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str

    @classmethod
    def of(cls, m: ModelRecord) -> Model:
        return cls(id=m.id, object="model", created=m.created_at,
                   owned_by=m.project or "tunesmith")


class ModelList(APIObject):
    object: Literal["list"]
    data: list[Model]


class TopLogprob(APIObject):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(APIObject):
    content: list[TokenLogprob] | None
    refusal: None


class FunctionCall(APIObject):
    name: str
    arguments: str
    """JSON, as the model wrote it."""


class ToolCall(APIObject):
    id: str
    type: Literal["function"]
    function: FunctionCall


class AssistantMessage(APIObject):
    role: Literal["assistant"]
    content: str | None
    refusal: None
    tool_calls: list[ToolCall] | None = None
    """Calls parsed from the answer when the request gave `tools`."""


class Choice(APIObject):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None
    finish_reason: Literal["stop", "length", "tool_calls"]


class Usage(APIObject):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(APIObject):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: str | None
    choices: list[Choice]
    usage: Usage


ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 409, 413, 500)}
"""The error statuses every route may answer (OpenAPI `responses`)."""
