"""Request bodies of the endpoints we serve, mirroring OpenAI's (`openai.types.*_params`).

Field bounds are OpenAI's documented ranges; pydantic enforces them and the error handler turns
a violation into OpenAI's 400 body naming the parameter. Unknown fields are ignored, as newer
clients send parameters older servers do not know.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from tunesmith.data.examples import Message
from tunesmith.data.jsonline import surrogate_path
from tunesmith.data.render import template_message

Auto = Literal["auto"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: object) -> object:
        # JSON's \udc80 escapes decode to lone surrogates, which no tokenizer or file accepts.
        where = surrogate_path(data)
        if where is not None:
            raise ValueError(f"'{where or 'body'}' holds a lone UTF-16 surrogate (an unpaired "
                             "\\ud800-\\udfff escape): not valid Unicode")
        return data


class Hyperparameters(_Body):
    n_epochs: Auto | Annotated[int, Field(ge=1, le=50)] = "auto"
    """Passes over the training file."""
    batch_size: Auto | Annotated[int, Field(ge=1, le=256)] = "auto"
    """Examples per optimizer step."""
    learning_rate_multiplier: Auto | Annotated[float, Field(gt=0, le=10)] = "auto"
    """Scales tunesmith's automatic learning rate."""


class Supervised(_Body):
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)


class DpoHyperparameters(Hyperparameters):
    beta: Auto | Annotated[float, Field(gt=0, le=2)] = "auto"
    """How close to the starting model the preferences are learned (auto = 0.1)."""


class Dpo(_Body):
    hyperparameters: DpoHyperparameters = Field(default_factory=DpoHyperparameters)


class Method(_Body):
    type: Literal["supervised", "dpo"]
    """Supervised fine-tuning or preference fine-tuning (DPO); not `reinforcement`."""
    supervised: Supervised | None = None
    dpo: Dpo | None = None

    def hyperparameters(self) -> dict:
        """The chosen method's hyperparameters, defaults filled in."""
        if self.type == "dpo":
            return (self.dpo or Dpo()).hyperparameters.model_dump()
        return (self.supervised or Supervised()).hyperparameters.model_dump()


class WandbIntegration(_Body):
    project: str = Field(min_length=1, max_length=128)
    """The W&B project the job's run is logged to."""
    name: str | None = Field(default=None, max_length=128)
    """The run's display name (default: the job id)."""
    entity: str | None = Field(default=None, max_length=128)
    """The W&B team or user (default: that of the server's API key)."""
    tags: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=50)
    """Tags attached to the run."""


class Integration(_Body):
    type: Literal["wandb"]
    """Only Weights & Biases, as OpenAI. Runs are offline (in the job's run folder) unless the
    server's environment has WANDB_API_KEY."""
    wandb: WandbIntegration


class Placement(_Body):
    """tunesmith's own job field (not OpenAI's): what the job needs from the worker that runs
    it. With the openai client: `extra_body={"tunesmith": {"device": "cuda", "gpus": 1}}`."""

    device: Literal["any", "cpu", "cuda"] = "any"
    """Only a worker with this device claims the job; `any`: the first free worker."""
    gpus: int = Field(default=0, ge=0, le=64)
    """GPUs the job needs (a `cuda` job: at least 1, the default)."""

    @model_validator(mode="after")
    def _gpus_need_cuda(self) -> Placement:
        if self.gpus > 0 and self.device != "cuda":
            raise ValueError(f"gpus={self.gpus} needs device 'cuda', not {self.device!r}")
        if self.device == "cuda" and self.gpus == 0:
            self.gpus = 1
        return self


class JobCreate(_Body):
    model: str = Field(min_length=1, max_length=512)
    """Base model: an alias such as `smollm2-135m-instruct`, a local folder or .gguf, a hub id."""
    training_file: str = Field(min_length=1, max_length=64)
    validation_file: str | None = Field(default=None, max_length=64)
    hyperparameters: Hyperparameters | None = None
    """Deprecated by OpenAI in favour of `method`; still accepted."""
    method: Method | None = None
    suffix: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.-]*$")
    seed: int | None = Field(default=None, ge=0, le=2_147_483_647)
    metadata: dict[Annotated[str, Field(max_length=64)],
                   Annotated[str, Field(max_length=512)]] | None = Field(default=None,
                                                                         max_length=16)
    """Up to 16 pairs: keys of at most 64 characters, values of at most 512 (OpenAI's limits)."""
    integrations: list[Integration] | None = Field(default=None, max_length=5)
    tunesmith: Placement | None = None
    """Not OpenAI's: where the job may run (`Placement`)."""


SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1
"""OpenAI's `seed` is a 64-bit integer; the engine seeds each choice with seed + index mod 2**64."""


class TextPart(_Body):
    type: Literal["text"]
    text: str


class FunctionCall(_Body):
    name: str = Field(max_length=256)
    arguments: str
    """The arguments as a JSON string, as the model wrote them."""


class ToolCall(_Body):
    id: str = Field(max_length=256)
    type: Literal["function"]
    function: FunctionCall


class ChatMessage(_Body):
    # Fields validate in this order: `content` and `tool_call_id` are checked against the role
    # and the calls before them.
    role: Literal["system", "developer", "user", "assistant", "tool"]
    tool_calls: list[ToolCall] | None = Field(default=None, max_length=128)
    """An assistant's earlier calls; its content may then be null."""
    content: str | Annotated[list[TextPart], Field(min_length=1)] | None = Field(
        default=None, validate_default=True)
    """Required (possibly empty) unless an assistant message carries tool calls."""
    tool_call_id: str | None = Field(default=None, max_length=256, validate_default=True)
    """Required on `tool` messages: the call this result answers."""
    name: str | None = Field(default=None, max_length=256)

    @field_validator("content")
    @classmethod
    def _content_required(cls, v: object, info: ValidationInfo) -> object:
        if v is None and not (info.data.get("role") == "assistant" and info.data.get("tool_calls")):
            raise ValueError("content is required unless an assistant message has tool_calls")
        return v

    @field_validator("tool_call_id")
    @classmethod
    def _id_required(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None and info.data.get("role") == "tool":
            raise ValueError("a tool message needs the tool_call_id it answers")
        return v

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""

    def template_message(self) -> dict:
        """This message as chat templates take it (`tunesmith.data.render.template_message`)."""
        calls = [c.model_dump() for c in self.tool_calls or []]
        return template_message(Message(
            "system" if self.role == "developer" else self.role, self.text(),
            tool_calls=calls or None, tool_call_id=self.tool_call_id,
            name=self.name if self.role == "tool" else None))


class FunctionDefinition(_Body):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict | None = None
    """A JSON schema object."""
    strict: bool | None = None


class Tool(_Body):
    type: Literal["function"]
    function: FunctionDefinition


class NamedToolChoice(_Body):
    type: Literal["function"]
    function: dict


class StreamOptions(_Body):
    include_usage: bool = False


class ChatCompletionCreate(_Body):
    model: str = Field(min_length=1, max_length=512)
    messages: list[ChatMessage] = Field(min_length=1, max_length=4096)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    """Deprecated by OpenAI for max_completion_tokens; either caps the answer. Neither: the
    server's default (`serve --default-max-tokens`); never more than the context leaves."""
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: Annotated[str, Field(max_length=1024)] | Annotated[
        list[Annotated[str, Field(max_length=1024)]], Field(max_length=4)] | None = None
    """Up to 4 sequences where the answer ends (not included in it)."""
    seed: int | None = Field(default=None, ge=SEED_MIN, le=SEED_MAX)
    n: int = Field(default=1, ge=1, le=16)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = Field(default=None, max_length=128)
    """Functions the model may call (OpenAI's limit: 128)."""
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    """"auto" (the default with tools) or "none"; forcing a call is refused with a 400."""
    parallel_tool_calls: bool | None = None
    """Accepted; a model may still write several calls (nothing is enforced while decoding)."""

    def stops(self) -> list[str]:
        found = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [s for s in found if s]
