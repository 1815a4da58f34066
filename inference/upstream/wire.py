"""What goes over the wire to an OpenAI-compatible upstream and back: the /v1/completions body
built from a `GenerationRequest`, and one server-sent event read into a `Chunk`.

Why /v1/completions with token ids for both of inferwatch's routes: the API layer has already
rendered the chat template and tokenised (with the same tokenizer files the upstream loads), so
sending the ids makes the upstream compute exactly what it computes for the same messages sent
to it directly, and inferwatch's own prompt validation and accounting stay exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from inference.backend import FinishReason, GenerationRequest

DATA = "data:"
DONE = "[DONE]"


def completion_body(
    request: GenerationRequest,
    model: str,
    prompt_text: str | None = None,
    *,
    priority: bool = False,
) -> dict[str, Any]:
    """`prompt_text` replaces the ids for an upstream that takes only text; `priority` sends
    the class as vLLM's priority (lower is scheduled first)."""
    params = request.sampling
    body: dict[str, Any] = {
        "model": model,
        "prompt": request.prompt_token_ids if prompt_text is None else prompt_text,
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "stream": True,
        "stream_options": {"include_usage": True},
        # vLLM's extension: each chunk's token ids, so token counts and times are exact even
        # when a chunk holds back bytes of an unfinished UTF-8 character (empty text).
        "return_token_ids": True,
    }
    if priority:
        body["priority"] = request.priority.rank
    if params.seed is not None:
        body["seed"] = params.seed
    if params.stop:
        body["stop"] = list(params.stop)
    if params.ignore_eos:
        body["ignore_eos"] = True
    return body


@dataclass
class Chunk:
    """One event of the upstream's stream."""

    text: str = ""
    tokens: int = 0  # new tokens in this chunk (from token_ids, else 1 per non-empty text)
    finish_reason: FinishReason | None = None
    prompt_tokens: int | None = None  # from the usage event
    completion_tokens: int | None = None
    error: str | None = None
    done: bool = False  # the [DONE] line


def parse_event(line: str) -> Chunk | None:
    """A `data: ...` line as a Chunk; None for anything else (comments, blank lines)."""
    if not line.startswith(DATA):
        return None
    payload = line[len(DATA) :].strip()
    if payload == DONE:
        return Chunk(done=True)
    try:
        event = json.loads(payload)
    except ValueError:
        return Chunk(error=f"unreadable event from the upstream: {payload[:200]!r}")
    if not isinstance(event, dict):
        return Chunk(error="the upstream sent an event that is not an object")
    if "error" in event:
        error = event["error"]
        message = error.get("message") if isinstance(error, dict) else error
        return Chunk(error=f"the upstream failed the request: {message}")
    chunk = Chunk()
    usage = event.get("usage")
    if isinstance(usage, dict):
        chunk.prompt_tokens = usage.get("prompt_tokens")
        chunk.completion_tokens = usage.get("completion_tokens")
    for choice in event.get("choices") or ():
        chunk.text += choice.get("text") or ""
        ids = choice.get("token_ids")
        chunk.tokens += len(ids) if isinstance(ids, list) else int(bool(choice.get("text")))
        reason = choice.get("finish_reason")
        if reason is not None:
            chunk.finish_reason = reason if reason in ("stop", "length") else "error"
    return chunk


def error_message(body: bytes) -> str:
    """The upstream's OpenAI error message, or the start of its body."""
    try:
        error = json.loads(body).get("error")
        message = error.get("message") if isinstance(error, dict) else None
        if isinstance(message, str):
            return message
    except (ValueError, AttributeError):
        pass
    return body[:300].decode("utf-8", errors="replace")
