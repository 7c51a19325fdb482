"""The objects the endpoints return, as OpenAI's API documents them (`openai.types`).

They describe the responses in /openapi.json, so clients and schema-driven tests (schemathesis,
in tests/serve/test_fuzz_api.py) know what comes back; the routes build plain dicts with the
records' `to_api()`, and the fuzz tests check that those conform.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

Auto = Literal["auto"]


class ErrorDetail(BaseModel):
    message: str
    type: str
    """`invalid_request_error`, or `server_error` for a 500."""
    param: str | None
    """The request parameter at fault, when one is."""
    code: str | None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx: OpenAI's error body."""

    error: ErrorDetail


class FileObject(BaseModel):
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


class FileList(BaseModel):
    object: Literal["list"]
    data: list[FileObject]
    has_more: bool
    first_id: str | None
    last_id: str | None


class Deleted(BaseModel):
    id: str
    object: Literal["file", "model"]
    deleted: bool


class Hyperparameters(BaseModel):
    n_epochs: Auto | int
    batch_size: Auto | int
    learning_rate_multiplier: Auto | float
    beta: Auto | float | None = None
    """DPO jobs only."""


class JobError(BaseModel):
    code: str
    message: str
    param: str | None


class SupervisedMethod(BaseModel):
    hyperparameters: Hyperparameters


class Method(BaseModel):
    type: Literal["supervised", "dpo"]
    supervised: SupervisedMethod | None = None
    dpo: SupervisedMethod | None = None
    """The same shape: {"hyperparameters": {..., "beta"}}."""


class FineTuningJob(BaseModel):
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


class JobList(BaseModel):
    object: Literal["list"]
    data: list[FineTuningJob]
    has_more: bool


class JobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"]
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"]
    data: dict


class EventList(BaseModel):
    object: Literal["list"]
    data: list[JobEvent]
    has_more: bool


class JobCheckpoint(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"]
    created_at: int
    fine_tuning_job_id: str
    fine_tuned_model_checkpoint: str
    """A model id callable in chat completions."""
    step_number: int
    metrics: dict


class CheckpointList(BaseModel):
    object: Literal["list"]
    data: list[JobCheckpoint]
    has_more: bool
    first_id: str | None
    last_id: str | None


class Model(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[Model]


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob] | None
    refusal: None


class FunctionCall(BaseModel):
    name: str
    arguments: str
    """JSON, as the model wrote it."""


class ToolCall(BaseModel):
    id: str
    type: Literal["function"]
    function: FunctionCall


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str | None
    refusal: None
    tool_calls: list[ToolCall] | None = None
    """Calls parsed from the answer when the request gave `tools`."""


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None
    finish_reason: Literal["stop", "length", "tool_calls"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: str | None
    choices: list[Choice]
    usage: Usage


ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 409, 413, 500)}
"""The error statuses every route may answer (OpenAPI `responses`)."""
