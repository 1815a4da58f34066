"""The OpenAI-compatible endpoints: /v1/completions, /v1/chat/completions, /v1/models."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response

from inference.api.errors import ParamError
from inference.api.formatting import ChatFormat, CompletionFormat
from inference.api.generation import GenerationService
from inference.api.schemas import (
    PRIORITIES,
    ChatBody,
    CompletionBody,
    GenerationBody,
    check_supported,
)
from inference.backend import SamplingParams

router = APIRouter()

# Chat requests without max_tokens get this many at most (and never past the context).
DEFAULT_CHAT_MAX_TOKENS = 256
_STARTED = int(time.time())
GREEDY_BELOW_TEMPERATURE = 1e-5
# Cross-field rules the schema cannot state; their 400s carry these codes.
EMPTY_PROMPT = "empty_prompt"


async def get_service(request: Request) -> GenerationService:
    """Async though it awaits nothing: FastAPI runs a plain `def` dependency in its thread
    pool, a thread hop per request that cost the front a tenth of its CPU under overload."""
    service: GenerationService = request.app.state.generation
    return service


Service = Annotated[GenerationService, Depends(get_service)]
PriorityHeader = Annotated[
    str | None, Header(alias="x-priority", json_schema_extra={"enum": PRIORITIES})
]


def _sampling(body: GenerationBody, max_tokens: int) -> SamplingParams:
    temperature = 1.0 if body.temperature is None else body.temperature
    return SamplingParams(
        max_tokens=max_tokens,
        # As vLLM does: a temperature this small is greedy (dividing by 1e-300 overflows).
        temperature=0.0 if temperature < GREEDY_BELOW_TEMPERATURE else temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        seed=body.seed,
        stop=body.stop_strings(),
        ignore_eos=body.ignore_eos,
    )


@router.post("/v1/completions")
async def completions(
    body: CompletionBody, request: Request, service: Service, x_priority: PriorityHeader = None
) -> Response:
    check_supported(body)
    service.check_model(body.model)
    priority = service.parse_priority(body.priority, x_priority)
    prompt = body.prompt_text()
    if not prompt:
        raise ParamError("prompt must not be empty", param="prompt", code=EMPTY_PROMPT)
    max_tokens = 16 if body.max_tokens is None else body.max_tokens
    call = service.new_call(
        request,
        operation="text_completion",
        prompt_text=prompt,
        prompt_ids=await service.encode(prompt),
        sampling=_sampling(body, max_tokens),
        priority=priority,
        stream=body.stream,
        include_usage=body.stream_options.include_usage if body.stream_options else None,
    )
    fmt = CompletionFormat(CompletionFormat.id_prefix + call.request.request_id, service.model_name)
    return await service.respond(request, call, fmt)


@router.post("/v1/chat/completions")
async def chat_completions(
    body: ChatBody, request: Request, service: Service, x_priority: PriorityHeader = None
) -> Response:
    check_supported(body)
    service.check_model(body.model)
    priority = service.parse_priority(body.priority, x_priority)
    messages = body.message_dicts()
    if not any(m["content"] for m in messages):
        raise ParamError("messages must contain some text", param="messages", code=EMPTY_PROMPT)
    prompt = await service.chat_prompt(messages)
    prompt_ids = await service.encode(prompt)
    max_tokens = body.requested_max_tokens()
    if max_tokens is None:
        room = service.backend.max_model_len - len(prompt_ids)
        max_tokens = max(1, min(DEFAULT_CHAT_MAX_TOKENS, room))
    call = service.new_call(
        request,
        operation="chat",
        prompt_text=prompt,
        prompt_ids=prompt_ids,
        sampling=_sampling(body, max_tokens),
        priority=priority,
        stream=body.stream,
        include_usage=body.stream_options.include_usage if body.stream_options else None,
    )
    fmt = ChatFormat(ChatFormat.id_prefix + call.request.request_id, service.model_name)
    return await service.respond(request, call, fmt)


@router.get("/v1/models")
async def models(request: Request, service: Service) -> dict[str, Any]:
    service.check_key(request)
    card = {
        "id": service.model_name,
        "object": "model",
        "created": _STARTED,
        "owned_by": "inferwatch",
        "max_model_len": service.backend.max_model_len,
    }
    return {"object": "list", "data": [card]}
