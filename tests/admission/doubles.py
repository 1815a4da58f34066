"""Test doubles for admission's unit tests, and the settings the HTTP tests share.

`ScriptedBackend` is a double of the engine because the gate's arithmetic (costs, limits,
latency samples, failures) needs requests that end exactly when and how a test says; the real
engine's timings cannot be chosen from outside. Every HTTP-level test uses the real engine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from inference.backend import (
    BackendStats,
    GenerationRequest,
    Priority,
    RequestOutput,
    RequestTimes,
    StepStats,
)

ADMIN_TOKEN = "admin-token-for-tests-0123456789"


class FakeClock:
    """A clock a test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class _Tokenizer:
    eos_token_id = None

    def encode(self, text: str) -> list[int]:
        return [ord(c) % 250 for c in text]

    def decode(self, token_ids: list[int]) -> str:
        return "".join(chr(97 + t % 26) for t in token_ids)

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return " ".join(m["content"] for m in messages)


@dataclass
class ScriptedStream:
    request: GenerationRequest
    queue: asyncio.Queue[RequestOutput] = field(default_factory=asyncio.Queue)
    closed: bool = False

    def __aiter__(self) -> ScriptedStream:
        return self

    async def __anext__(self) -> RequestOutput:
        if self.closed:
            raise StopAsyncIteration
        output = await self.queue.get()
        if output.finished:
            self.closed = True
        return output

    async def aclose(self) -> None:
        self.closed = True

    def finish(
        self,
        *,
        ttft: float = 0.01,
        tpot: float = 0.01,
        tokens: int = 4,
        reason: str = "length",
        error: str | None = None,
    ) -> None:
        """Deliver the final output with these latencies (arrival is the request's)."""
        arrival = self.request.arrival
        first = arrival + ttft
        times = RequestTimes(arrival=arrival, first_scheduled=arrival, first_token=first)
        times.finished = first + tpot * (tokens - 1)
        self.queue.put_nowait(
            RequestOutput(
                request_id=self.request.request_id, token_ids=[1] * tokens, text="x" * tokens,
                finished=True, finish_reason=reason,  # type: ignore[arg-type]
                prompt_tokens=len(self.request.prompt_token_ids), completion_tokens=tokens,
                times=times, error=error,
            )
        )  # fmt: skip


class ScriptedBackend:
    """A `Backend` whose requests end when the test calls `finish` on their stream."""

    model_name = "scripted"
    backend_name = "scripted"
    max_model_len = 4096

    def __init__(self, kv_tokens: int = 4096) -> None:
        self.tokenizer = _Tokenizer()
        self.kv_tokens = kv_tokens
        self.streams: list[ScriptedStream] = []
        self.cancelled: list[str] = []
        self.refuse: Callable[[GenerationRequest], None] | None = None
        self.waiting: dict[Priority, int] = {p: 0 for p in Priority}  # what stats() reports
        self.oldest_wait = 0.0

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def ready(self) -> bool:
        return True

    def generate(self, request: GenerationRequest) -> ScriptedStream:
        if self.refuse is not None:
            self.refuse(request)
        stream = ScriptedStream(request)
        self.streams.append(stream)
        return stream

    async def cancel(self, request_id: str) -> None:
        self.cancelled.append(request_id)
        for stream in self.streams:
            if stream.request.request_id == request_id and not stream.closed:
                stream.finish(reason="cancelled")

    async def refresh_stats(self) -> None:
        """The script's figures are always current."""

    def stats(self) -> BackendStats:
        return BackendStats(
            waiting_by_priority=dict(self.waiting),
            oldest_wait_seconds_by_priority={
                p: self.oldest_wait if n else 0.0 for p, n in self.waiting.items()
            },
            running=len([s for s in self.streams if not s.closed]),
        )

    def add_step_listener(self, listener: Callable[[StepStats], None]) -> None: ...


def request(
    n: int, priority: Priority = Priority.STANDARD, prompt: int = 100, max_tokens: int = 100
) -> GenerationRequest:
    from inference.backend import SamplingParams

    return GenerationRequest(
        request_id=f"r{n}",
        prompt_token_ids=[1] * prompt,
        sampling=SamplingParams(max_tokens=max_tokens),
        priority=priority,
        arrival=time.monotonic(),
    )
