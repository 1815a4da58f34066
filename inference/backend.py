"""The contract between the API layer and whatever generates tokens.

The API, the metrics and the traces only see these types, so a later backend that proxies to
vLLM (or any OpenAI-compatible engine) replicas can replace the built-in engine without touching
them. Times are `time.monotonic()` seconds; `wall_ns()` converts them for spans.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

_WALL_OFFSET = time.time() - time.monotonic()


def wall_ns(monotonic_seconds: float) -> int:
    """Epoch nanoseconds for a monotonic timestamp (OpenTelemetry span times)."""
    return int((monotonic_seconds + _WALL_OFFSET) * 1e9)


class Priority(StrEnum):
    """Priority classes, most important first; the order is the scheduling order."""

    PREMIUM = "premium"
    STANDARD = "standard"
    BATCH = "batch"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Priority.PREMIUM: 0, Priority.STANDARD: 1, Priority.BATCH: 2}

FinishReason = Literal["stop", "length", "cancelled", "error"]


@dataclass(frozen=True)
class SamplingParams:
    """OpenAI-style sampling. temperature 0 means greedy; seed makes sampling reproducible."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False


@dataclass
class GenerationRequest:
    request_id: str
    prompt_token_ids: list[int]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    priority: Priority = Priority.STANDARD
    arrival: float = field(default_factory=time.monotonic)
    # Whose request it is (an API key's tenant, never client text), or None. With the engine's
    # prefix_cache_scope "tenant", cached prompt blocks are shared only within one tenant.
    tenant: str | None = None


@dataclass
class RequestTimes:
    """Lifecycle timestamps of one request (monotonic seconds)."""

    arrival: float
    first_scheduled: float | None = None
    first_token: float | None = None
    token_times: list[float] = field(default_factory=list)
    preempted: list[float] = field(default_factory=list)
    finished: float | None = None


@dataclass
class RequestOutput:
    """One increment of a request's output; the last one has `finished` set.

    `text` is the newly decoded text (stop strings already removed), `token_ids` the new tokens.
    """

    request_id: str
    token_ids: list[int]
    text: str
    finished: bool
    finish_reason: FinishReason | None
    prompt_tokens: int
    completion_tokens: int
    times: RequestTimes
    error: str | None = None


@dataclass(frozen=True)
class StepStats:
    """One scheduler step, handed to step listeners (histograms of step time and batch size)."""

    phase: Literal["prefill", "decode", "mixed"]
    duration_seconds: float
    batch_size: int
    num_tokens: int


@dataclass
class KVCacheStats:
    """What only a paged-KV engine knows: blocks and the prefix cache (a proxy backend has none
    and reports `kv=None` rather than invented numbers). Counters are cumulative since start."""

    blocks_total: int
    blocks_used: int
    blocks_free: int
    blocks_cached: int
    prefix_cache_queries_tokens: int
    prefix_cache_hits_tokens: int
    preemptions_by_priority: dict[Priority, int]
    block_size: int
    dtype: str
    device: str

    @property
    def usage_ratio(self) -> float:
        return self.blocks_used / self.blocks_total if self.blocks_total else 0.0


@dataclass
class BackendStats:
    """A live snapshot any backend can give, read at scrape time: its queues and batch."""

    waiting_by_priority: dict[Priority, int]
    oldest_wait_seconds_by_priority: dict[Priority, float]
    running: int
    steps_total: int = 0
    engine_alive: bool = True
    kv: KVCacheStats | None = None
    upstreams: tuple[UpstreamStats, ...] | None = None  # only a backend that fronts replicas


@dataclass(frozen=True)
class UpstreamStats:
    """One replica behind a proxy backend: the sums in BackendStats hide which one is full or
    out of rotation. `waiting` and `running` are the replica's own figures at its last good
    /metrics reading (None: no reading), `outstanding` is this service's requests on it."""

    url: str
    healthy: bool
    outstanding: int
    waiting: float | None
    running: float | None


class EngineError(Exception):
    """Base of the errors a backend raises to the API layer."""


class InvalidRequestError(EngineError, ValueError):
    """The request can never be served as sent (HTTP 400); the message says why."""


class RejectedError(EngineError):
    """A request refused before any work was done on it; every refusal raises this (or a
    subclass) and one API handler answers it.

    `reason` is the `inferwatch_request_rejections_total` label (a fixed vocabulary, never
    client text), `status` the HTTP status, `retry_after` the seconds a client should wait
    (None: retrying as sent cannot help, so no Retry-After is sent).
    """

    reason: str = "rejected"
    status: int = 503
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.retry_after = retry_after


class PromptTooLongError(RejectedError, InvalidRequestError):
    """Prompt (plus max_tokens) exceeds the context window: 400, reason prompt_too_long."""

    reason = "prompt_too_long"
    status = 400
    code = "context_length_exceeded"


class QueueFullError(RejectedError):
    """The bounded waiting queue is full: 503 with Retry-After, reason queue_full."""

    reason = "queue_full"
    status = 503
    code = "queue_full"

    def __init__(self, message: str, *, retry_after: float | None = 1.0) -> None:
        super().__init__(message, retry_after=retry_after)


@runtime_checkable
class Tokenizer(Protocol):
    eos_token_id: int | None

    def encode(self, text: str) -> list[int]: ...

    def decode(self, token_ids: list[int]) -> str: ...

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str: ...


class RequestStream(Protocol):
    def __aiter__(self) -> AsyncIterator[RequestOutput]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Backend(Protocol):
    """What the API layer needs from an engine."""

    model_name: str
    tokenizer: Tokenizer
    max_model_len: int
    backend_name: str  # "builtin", later "vllm-proxy"

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def ready(self) -> bool:
        """Model loaded and engine loop alive."""
        ...

    def generate(self, request: GenerationRequest) -> RequestStream:
        """A plain (not async) call: validates and enqueues at once, raising
        InvalidRequestError / PromptTooLongError / QueueFullError synchronously. The returned
        stream yields outputs until the finished one; `aclose()` before that (client gone)
        cancels the request and frees its KV blocks at once."""
        ...

    async def cancel(self, request_id: str) -> None: ...

    def stats(self) -> BackendStats: ...

    async def refresh_stats(self) -> None:
        """Called before a scrape reads `stats()`: a backend whose figures are read from
        elsewhere (the upstreams' /metrics) reads them now; the engine's are always current."""
        ...

    def add_step_listener(self, listener: Callable[[StepStats], None]) -> None:
        """Called from the engine thread after every step; must be fast and thread-safe."""
        ...
