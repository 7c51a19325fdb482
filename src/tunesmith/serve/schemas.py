"""Request bodies of the endpoints we serve, mirroring OpenAI's (`openai.types.*_params`).

Field bounds are OpenAI's documented ranges; pydantic enforces them and the error handler turns
a violation into OpenAI's 400 body naming the parameter. Unknown fields are ignored, as newer
clients send parameters older servers do not know.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tunesmith.data.jsonline import surrogate_path

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


class Method(_Body):
    type: Literal["supervised"]
    """Only supervised fine-tuning is served (not `dpo` or `reinforcement`)."""
    supervised: Supervised = Field(default_factory=Supervised)


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


SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1
"""OpenAI's `seed` is a 64-bit integer; the engine seeds each choice with seed + index mod 2**64."""


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | Annotated[list[TextPart], Field(min_length=1)]
    """Required: without tool calls (not served) every message has text, possibly empty."""
    name: str | None = Field(default=None, max_length=256)

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


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

    def stops(self) -> list[str]:
        found = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [s for s in found if s]
