"""Request bodies of the OpenAI-compatible endpoints: the API contract, as pydantic models.

Unknown fields are ignored (clients send newer OpenAI parameters); the ones we read are
validated here, so bad input becomes a 400 before it reaches the engine. OpenAI parameters that
would change what the response means (logprobs, echo, tools, penalties...) are refused when set,
never silently ignored: a client asking for logprobs must not get a 200 without them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from inference.api.errors import ParamError


def _encodable(text: str) -> str:
    """JSON can carry a lone surrogate ("\\ud800"); UTF-8 cannot, and the tokenizer would fail
    on it later with a 500. Refused here, so the 400 names the field."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"contains invalid Unicode (a lone surrogate at position {exc.start})"
        ) from None
    return text


Text = Annotated[str, AfterValidator(_encodable)]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool | None = None


class GenerationBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    seed: Annotated[int, Field(ge=-(2**63), lt=2**63)] | None = None  # torch.Generator range
    stop: Text | list[Text] | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None  # accepted for compatibility; never logged
    priority: str | None = None
    ignore_eos: bool = False  # vLLM's extension: fixed-length outputs for load tests
    # Declared only to be refused when set (see UNSUPPORTED).
    logprobs: bool | int | None = None
    top_logprobs: int | None = None
    echo: bool = False
    best_of: int | None = None
    logit_bias: dict[str, float] | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return tuple(s for s in stops if s)


class CompletionBody(GenerationBody):
    prompt: Text | Annotated[list[Text], Field(min_length=1, max_length=1)]
    max_tokens: Annotated[int, Field(ge=1)] | None = 16

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: Text


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Text | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatBody(GenerationBody):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens else self.max_tokens

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.text()} for m in self.messages]


MAX_STOP_SEQUENCES = 4  # OpenAI's limit

# parameter -> "is it set to something this server cannot honour?"
UNSUPPORTED: dict[str, Callable[[Any], bool]] = {
    "logprobs": lambda v: v not in (None, False),
    "top_logprobs": lambda v: v not in (None, 0),
    "echo": bool,
    "best_of": lambda v: v not in (None, 1),
    "logit_bias": bool,
    "presence_penalty": lambda v: v != 0,
    "frequency_penalty": lambda v: v != 0,
    "tools": bool,
    "functions": bool,
    "tool_choice": lambda v: v not in (None, "none"),
    "response_format": lambda v: v is not None and v.get("type", "text") != "text",
}


def check_supported(body: GenerationBody) -> None:
    """What the schema cannot say: limits of this server rather than of the OpenAI API."""
    if body.n != 1:
        raise ParamError("only n=1 is supported", param="n")
    if isinstance(body.stop, list) and len(body.stop) > MAX_STOP_SEQUENCES:
        raise ParamError(f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed", param="stop")
    for name, is_set in UNSUPPORTED.items():
        if is_set(getattr(body, name)):
            raise ParamError(f"{name} is not supported by this server", param=name)
