"""An admitted request's stream: it gives the request's cost back when it ends, feeds the
adaptive limit and the breaker with what happened, and enforces the class's deadline.

The deadline is one timer per request, not a timeout per token: when it fires the request is
cancelled in the backend (which frees its KV blocks and ends the stream), and the reader gets
`DeadlineExceededError` instead of the cancelled output.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from inference.admission.refusals import DeadlineExceededError
from inference.backend import Backend, GenerationRequest, RequestOutput, RequestStream

# How a request ended, from admission's point of view.
COMPLETED, FAILED, CANCELLED, EXPIRED = "completed", "failed", "cancelled", "expired"


@dataclass(frozen=True)
class Ending:
    outcome: str
    cost: float
    output: RequestOutput | None


class Admitter(Protocol):
    def first_token(self, request: GenerationRequest, cost: float, ttft: float) -> None: ...

    def finished(self, request: GenerationRequest, ending: Ending) -> None: ...


class GatedStream:
    def __init__(
        self,
        inner: RequestStream,
        request: GenerationRequest,
        cost: float,
        *,
        backend: Backend,
        admitter: Admitter,
        timeout_s: float,
        retry_after: Callable[[], float],
    ) -> None:
        self._inner = inner
        self._outputs: AsyncIterator[RequestOutput] = aiter(inner)
        self._request = request
        self._cost = cost
        self._backend = backend
        self._admitter = admitter
        self._timeout_s = timeout_s
        self._retry_after = retry_after
        self._ended = False
        self._expired = False
        self._first_seen = False
        remaining = request.arrival + timeout_s - time.monotonic()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, remaining), self._expire)

    def __aiter__(self) -> GatedStream:
        return self

    async def __anext__(self) -> RequestOutput:
        if self._ended:
            raise StopAsyncIteration
        try:
            output = await anext(self._outputs)
        except StopAsyncIteration:
            self._end(COMPLETED, None)
            raise
        except Exception:
            self._end(FAILED, None)
            raise
        if self._expired and not _completed(output):
            self._end(EXPIRED, output)
            raise DeadlineExceededError(
                f"the request ran past the {self._timeout_s:g} s deadline of its priority "
                f"class ({self._request.priority.value}) and was cancelled",
                retry_after=self._retry_after(),
            )
        if not self._first_seen and output.times.first_token is not None:
            self._first_seen = True
            ttft = output.times.first_token - output.times.arrival
            self._admitter.first_token(self._request, self._cost, ttft)
        if output.finished:
            self._end(_outcome(output), output)
        return output

    async def aclose(self) -> None:
        if not self._ended:
            self._end(CANCELLED, None)
        await self._inner.aclose()

    def _expire(self) -> None:
        if self._ended:
            return
        self._expired = True
        asyncio.ensure_future(self._backend.cancel(self._request.request_id))

    def _end(self, outcome: str, output: RequestOutput | None) -> None:
        if self._ended:
            return
        self._ended = True
        self._timer.cancel()
        self._admitter.finished(self._request, Ending(outcome, self._cost, output))


def _completed(output: RequestOutput) -> bool:
    return output.finished and output.finish_reason in ("stop", "length")


def _outcome(output: RequestOutput) -> str:
    # "cancelled" that admission did not cause: the backend ended it (stopping, say).
    return COMPLETED if _completed(output) and output.error is None else FAILED
