"""Request bodies of the endpoints we serve, mirroring OpenAI's (`openai.types.*_params`).

Field bounds are OpenAI's documented ranges; pydantic enforces them and the error handler turns
a violation into OpenAI's 400 body naming the parameter. Unknown fields are ignored, as newer
clients send parameters older servers do not know.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Auto = Literal["auto"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


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
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = Field(default=None,
                                                                             max_length=16)


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class StreamOptions(_Body):
    include_usage: bool = False


class ChatCompletionCreate(_Body):
    model: str = Field(min_length=1, max_length=512)
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=16)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    stream: bool = False
    stream_options: StreamOptions | None = None

    def stops(self) -> list[str]:
        found = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [s for s in found if s][:4]
