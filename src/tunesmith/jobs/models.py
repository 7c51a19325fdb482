"""The service's records, shaped like OpenAI's objects (`openai.types`): files, fine-tuning jobs,
their events and checkpoints, and the models a project can call.

What the API returns for each record is defined once, in `serve/objects.py`
(`FileObject.of(record)`, ...), so the official client parses it unchanged.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from tunesmith.config import Optimizer, Quantize

JobStatus = Literal["validating_files", "queued", "running", "paused", "succeeded", "failed",
                   "cancelled"]
"""OpenAI's job states; the last three are final. `paused` (POST .../pause) holds a checkpoint
and no worker; POST .../resume queues the job again."""
FINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
ModelKind = Literal["base", "fine-tuned", "checkpoint"]
Device = Literal["any", "cpu", "cuda"]
"""What a job needs and a worker has (`any`: a job that runs on whatever the worker has)."""

PREFIX = {"file": "file-", "job": "ftjob-", "event": "ftevent-", "checkpoint": "ftckpt_",
          "chat": "chatcmpl-"}


def new_id(kind: str) -> str:
    """A fresh id in OpenAI's style: `file-9Hq...`, `ftjob-...` (24 random url-safe characters)."""
    return PREFIX[kind] + secrets.token_hex(12)


def now() -> int:
    return int(time.time())


@dataclass
class FileRecord:
    id: str
    project: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    path: str
    """Where the bytes are, relative to the service home (never derived from the id)."""
    status: Literal["uploaded", "processed", "error"] = "processed"
    status_details: str | None = None
    """For a `fine-tune` file with problems: the data checks' first errors."""



@dataclass
class Job:
    id: str
    project: str
    model: str
    """The base model spec, as the client gave it."""
    training_file: str
    validation_file: str | None
    hyperparameters: dict
    """`n_epochs`, `batch_size`, `learning_rate_multiplier`: "auto" until training resolves them."""
    seed: int
    suffix: str | None = None
    metadata: dict | None = None
    status: JobStatus = "validating_files"
    created_at: int = field(default_factory=now)
    finished_at: int | None = None
    estimated_finish: int | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    result_files: list[str] = field(default_factory=list)
    error: dict | None = None
    """`{"code", "message", "param"}` of a failed job."""
    workdir: str = ""
    """The run folder, relative to the service home (random, never derived from the id)."""
    method: Literal["supervised", "dpo"] = "supervised"
    """OpenAI's `method.type`; `hyperparameters` are that method's."""
    base_model: str | None = None
    """The base model at the root of a continued fine-tuning (whose `model` is an `ft:` id);
    None when `model` is a base model. Fine-tuned model ids name it."""
    paused_at: int | None = None
    """When the job stopped for a pause (None while the worker is still taking it to a
    checkpoint, or when it is not paused)."""
    resume_to: str | None = None
    """The status a paused job returns to on resume (`queued` for one that was running and
    stopped, `running` for one the worker has not stopped yet)."""
    integrations: list[dict] = field(default_factory=list)
    """OpenAI's `integrations`: `[{"type": "wandb", "wandb": {"project", "name", "entity",
    "tags"}}]`; the worker logs the run to W&B (offline unless the server has WANDB_API_KEY)."""
    device: Device = "any"
    """Where the job may run (tunesmith's own field, not OpenAI's): only a worker with this
    device claims it; `any` runs anywhere."""
    gpus: int = 0
    """GPUs the job needs (a `cuda` job: at least 1); a worker with fewer does not claim it."""



@dataclass
class JobEvent:
    id: str
    job_id: str
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"] = "message"
    data: dict | None = None



@dataclass
class Checkpoint:
    id: str
    job_id: str
    created_at: int
    step: int
    model_id: str
    """`ft:...:ckpt-step-N`, callable in chat completions."""
    metrics: dict



@dataclass
class ModelRecord:
    id: str
    project: str | None
    """None: a base model every project may call."""
    kind: ModelKind
    spec: str
    """What `load_for_inference` loads: a model spec, or a folder relative to the home."""
    created_at: int = field(default_factory=now)
    job_id: str | None = None



@dataclass(frozen=True)
class JobTraining:
    """Memory levers a worker applies to every job it runs: a property of its device (a larger
    model fits), not of the job. Each is the `train` option of the same name."""

    gradient_checkpointing: bool = False
    quantize: Quantize = "none"
    optimizer: Optimizer = "adamw"

    FLAGS: ClassVar[tuple[str, ...]] = ("gradient_checkpointing", "quantize", "optimizer")

    def argv(self) -> list[str]:
        """These settings as command-line flags (for a worker child process)."""
        out = ["--gradient-checkpointing"] if self.gradient_checkpointing else []
        return out + ["--quantize", self.quantize, "--optimizer", self.optimizer]

    @classmethod
    def from_args(cls, args: Any) -> JobTraining:
        """From parsed flags (`cli.worker.add_job_options`)."""
        return cls(**{name: getattr(args, name) for name in cls.FLAGS})
