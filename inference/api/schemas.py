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
from inference.backend import Priority

PRIORITIES = [p.value for p in Priority]
MAX_STOP_SEQUENCES = 4  # OpenAI's limit


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
# The smallest positive normal float32: a smaller top_p becomes 0 (or a subnormal) in the
# sampler's float32 arithmetic and masks every token.
FLOAT32_TINY = 1.1754943508222875e-38


def _schema_only(allowed: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """json_schema_extra that documents only what this server honours for an OpenAI parameter
    it parses just to refuse (a 400 naming it) when set to anything else."""

    def replace(schema: dict[str, Any]) -> None:
        title = schema.get("title")
        schema.clear()
        schema.update(allowed)
        if title:
            schema["title"] = title
        schema["description"] = "not supported by this server beyond the values listed"

    return replace


def _unsupported(default: Any, allowed: dict[str, Any]) -> Any:
    return Field(default=default, json_schema_extra=_schema_only(allowed))


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool | None = None


class GenerationBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(ge=FLOAT32_TINY, le=1.0)] | None = None
    # JSON-safe integers: larger ones round through floats on many clients (and fuzzers).
    seed: Annotated[int, Field(ge=-(2**53), le=2**53)] | None = None
    stop: Text | Annotated[list[Text], Field(max_length=MAX_STOP_SEQUENCES)] | None = None
    n: int = _unsupported(1, {"type": "integer", "enum": [1]})
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None  # accepted for compatibility; never logged
    # Parsed (case-insensitively) at the edge; the enum documents the accepted values.
    priority: Annotated[str, Field(json_schema_extra={"enum": PRIORITIES})] | None = None
    ignore_eos: bool = False  # vLLM's extension: fixed-length outputs for load tests
    # Declared only to be refused when set (see UNSUPPORTED).
    logprobs: bool | int | None = _unsupported(None, {"enum": [None, False]})
    top_logprobs: int | None = _unsupported(None, {"enum": [None, 0]})
    echo: bool = _unsupported(False, {"type": "boolean", "enum": [False]})
    best_of: int | None = _unsupported(None, {"enum": [None, 1]})
    logit_bias: dict[str, float] | None = _unsupported(
        None, {"anyOf": [{"type": "object", "maxProperties": 0}, {"type": "null"}]}
    )
    presence_penalty: float = _unsupported(0.0, {"type": "number", "enum": [0]})
    frequency_penalty: float = _unsupported(0.0, {"type": "number", "enum": [0]})
    tools: list[Any] | None = _unsupported(
        None, {"anyOf": [{"type": "array", "maxItems": 0}, {"type": "null"}]}
    )
    functions: list[Any] | None = _unsupported(
        None, {"anyOf": [{"type": "array", "maxItems": 0}, {"type": "null"}]}
    )
    tool_choice: Any = _unsupported(None, {"enum": [None, "none"]})
    response_format: dict[str, Any] | None = _unsupported(
        None,
        {
            "anyOf": [
                {"type": "object", "properties": {"type": {"enum": ["text"]}}},
                {"type": "null"},
            ]
        },
    )

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return tuple(s for s in stops if s)


class CompletionBody(GenerationBody):
    prompt: (
        Annotated[Text, Field(min_length=1)]
        | Annotated[list[Annotated[Text, Field(min_length=1)]], Field(min_length=1, max_length=1)]
    )
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
