"""OpenAI response shapes for completions and chat, whole and as stream chunks.

The two endpoints differ only here (and in how the prompt is built), so the request flow in
`generation.py` is written once against this small interface.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

DONE_EVENT = b"data: [DONE]\n\n"


def sse_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def usage_dict(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class ResponseFormat(Protocol):
    id_prefix: str

    def full(
        self, text: str, finish_reason: str | None, usage: dict[str, int]
    ) -> dict[str, Any]: ...

    def opening_chunk(self) -> dict[str, Any] | None: ...

    def chunk(self, text: str, finish_reason: str | None) -> dict[str, Any]: ...

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]: ...


class _Base:
    object_full = ""
    object_chunk = ""

    def __init__(self, response_id: str, model: str) -> None:
        self.response_id = response_id
        self.model = model
        self.created = int(time.time())

    def _envelope(self, obj: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.response_id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]:
        return {**self._envelope(self.object_chunk, []), "usage": usage}


class CompletionFormat(_Base):
    id_prefix = "cmpl-"
    object_full = object_chunk = "text_completion"

    def full(self, text: str, finish_reason: str | None, usage: dict[str, int]) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        return {**self._envelope(self.object_full, [choice]), "usage": usage}

    def opening_chunk(self) -> dict[str, Any] | None:
        return None

    def chunk(self, text: str, finish_reason: str | None) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        return self._envelope(self.object_chunk, [choice])


class ChatFormat(_Base):
    id_prefix = "chatcmpl-"
    object_full = "chat.completion"
    object_chunk = "chat.completion.chunk"

    def full(self, text: str, finish_reason: str | None, usage: dict[str, int]) -> dict[str, Any]:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        return {**self._envelope(self.object_full, [choice]), "usage": usage}

    def opening_chunk(self) -> dict[str, Any] | None:
        choice = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        return self._envelope(self.object_chunk, [choice])

    def chunk(self, text: str, finish_reason: str | None) -> dict[str, Any]:
        delta = {"content": text} if text else {}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._envelope(self.object_chunk, [choice])
