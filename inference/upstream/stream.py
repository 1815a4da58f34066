"""One request's answer from the upstreams: sent to the least loaded one, its server-sent events
turned into `RequestOutput`s as they arrive (one output per event, nothing held back), retried
on another upstream when the first one fails before anything was delivered.

Times are taken here, at inferwatch's edge: `first_scheduled` is when the request left for the
upstream (so the queue span is inferwatch's own wait), `first_token` when the first text
arrived, one token time per token, `finished` at the end. The recorder makes TTFT,
inter-token latency and duration of them, by priority, as for the built-in engine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from inference.backend import (
    FinishReason,
    GenerationRequest,
    InvalidRequestError,
    PromptTooLongError,
    QueueFullError,
    RejectedError,
    RequestOutput,
    RequestTimes,
)
from inference.upstream.connection import ConnectionPool, UpstreamTransportError
from inference.upstream.pool import NoUpstreamError, Upstream, UpstreamPool
from inference.upstream.wire import Chunk, error_message, parse_event

log = logging.getLogger("inferwatch.upstream")

# Statuses that say "not now, maybe elsewhere": another upstream is tried, this one stays in.
BUSY = (429, 503)


class UpstreamBusyError(Exception):
    """The upstream refused for load (429/503) before answering: try another."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"upstream answered {status}")
        self.retry_after = retry_after


class UpstreamFailedEarly(Exception):
    """The upstream broke before the first token reached the client: safe to retry."""


class CircuitOpenError(RejectedError):
    """No upstream could take the request: 503 with Retry-After, reason circuit_open."""

    reason = "circuit_open"
    status = 503
    code = "upstream_unavailable"


@dataclass
class Route:
    """What one request needs besides itself: where, how, with which trace context."""

    pool: UpstreamPool
    connections: ConnectionPool
    body: bytes  # the JSON of the completion request, the same for every upstream tried
    headers: dict[str, str]
    retries: int
    retry_after: float


class UpstreamStream:
    """A `RequestStream` over the upstreams (inference/backend.py)."""

    def __init__(self, request: GenerationRequest, route: Route) -> None:
        self.request = request
        self.route = route
        self._outputs = self._run()
        self._on_close: list[Callable[[], object]] = []

    def on_close(self, callback: Callable[[], object]) -> None:
        self._on_close.append(callback)

    def _closed(self) -> None:
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            callback()

    def __aiter__(self) -> AsyncIterator[RequestOutput]:
        return self._outputs

    async def aclose(self) -> None:
        """The client left: closing the generator closes the upstream connection, which makes
        vLLM abort the request and free its KV cache."""
        try:
            await self._outputs.aclose()
        finally:
            self._closed()

    async def _run(self) -> AsyncIterator[RequestOutput]:
        try:
            async for output in self._serve():
                yield output
        finally:
            self._closed()

    async def _serve(self) -> AsyncIterator[RequestOutput]:
        pool, tried = self.route.pool, list[Upstream]()
        busy_after: float | None = None
        failure = "no healthy upstream"
        for _ in range(self.route.retries + 1):
            try:
                upstream = pool.choose(exclude=tried)
            except NoUpstreamError:
                break
            tried.append(upstream)
            times = RequestTimes(arrival=self.request.arrival, first_scheduled=time.monotonic())
            ticket = pool.begin(upstream, self.request.priority)
            ended = False
            try:
                async for output in self._attempt(upstream, ticket, times):
                    if output.finished:
                        # The reader stops at the last output and may never resume this
                        # generator, so `finally` would wait for its garbage collection: the
                        # request would stay outstanding on the upstream and skew the choice.
                        ended = True
                        pool.end(upstream, ticket)
                    yield output
                return
            except UpstreamBusyError as exc:
                busy_after = exc.retry_after or self.route.retry_after
                failure = str(exc)
            except (UpstreamTransportError, UpstreamFailedEarly) as exc:
                pool.eject(upstream, f"{type(exc).__name__}: {exc}")
                failure = f"{upstream.url}: {type(exc).__name__}: {exc}"
                fields = {"request_id": self.request.request_id, "url": upstream.url}
                log.warning("upstream failed before the first token", extra={"fields": fields})
            finally:
                if not ended:
                    pool.end(upstream, ticket)
        if busy_after is not None:
            raise QueueFullError(f"every upstream is busy ({failure})", retry_after=busy_after)
        raise CircuitOpenError(
            f"no upstream could serve the request ({failure})",
            retry_after=self.route.retry_after,
        )

    async def _attempt(
        self, upstream: Upstream, ticket: int, times: RequestTimes
    ) -> AsyncIterator[RequestOutput]:
        """One upstream's answer. Before anything is yielded, a failure raises (the caller
        retries elsewhere); after, it ends the request with an error output."""
        route, delivered = self.route, False
        prompt_tokens, completion = len(self.request.prompt_token_ids), 0
        finish: FinishReason | None = None
        try:
            async with route.connections.post(
                upstream.url, "/v1/completions", route.body, route.headers
            ) as answer:
                if answer.status != 200:
                    raise _refusal(answer.status, await answer.read(), answer.headers)
                done = False
                # Read to the end of the body, past [DONE]: a connection whose body was left
                # unread is closed, not kept, and every request would open a new one (a TCP
                # handshake on the way to its first token).
                async for line in answer.lines():
                    chunk = None if done else parse_event(line)
                    if chunk is None:
                        continue
                    if chunk.error is not None:
                        raise UpstreamFailedEarly(chunk.error)
                    if chunk.done:
                        done = True
                        continue
                    now = time.monotonic()
                    if chunk.tokens:
                        if times.first_token is None:
                            times.first_token = now
                            route.pool.started(upstream, ticket)
                        times.token_times.extend([now] * chunk.tokens)
                        completion += chunk.tokens
                    if chunk.prompt_tokens is not None:
                        prompt_tokens = chunk.prompt_tokens
                    if chunk.completion_tokens is not None:
                        completion = chunk.completion_tokens
                    if chunk.finish_reason is not None:
                        finish = chunk.finish_reason
                    if chunk.text:
                        delivered = True
                        yield self._output(
                            chunk.text, False, None, prompt_tokens, completion, times
                        )
        except (UpstreamTransportError, UpstreamFailedEarly) as exc:
            if not delivered:
                raise
            times.finished = time.monotonic()
            error = f"the upstream {upstream.url} failed mid-answer: {type(exc).__name__}: {exc}"
            yield self._output("", True, "error", prompt_tokens, completion, times, error)
            return
        if finish is None:  # the stream ended without a finish: the upstream died
            if not delivered:
                raise UpstreamFailedEarly("the answer ended before it finished")
            times.finished = time.monotonic()
            error = f"the upstream {upstream.url} ended the answer unfinished"
            yield self._output("", True, "error", prompt_tokens, completion, times, error)
            return
        times.finished = time.monotonic()
        yield self._output("", True, finish, prompt_tokens, completion, times)

    def _output(
        self,
        text: str,
        finished: bool,
        reason: FinishReason | None,
        prompt_tokens: int,
        completion_tokens: int,
        times: RequestTimes,
        error: str | None = None,
    ) -> RequestOutput:
        return RequestOutput(
            request_id=self.request.request_id,
            token_ids=[],  # the text is the upstream's; its ids are never needed here
            text=text,
            finished=finished,
            finish_reason=reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            times=times,
            error=error,
        )


def _refusal(status: int, body: bytes, headers: Mapping[str, str]) -> Exception:
    """A non-200 answer as what it means for this request."""
    message = error_message(body)
    if status in BUSY:
        return UpstreamBusyError(status, _retry_after(headers))
    if status == 400 and ("context" in message or "maximum" in message):
        return PromptTooLongError(f"the upstream refused: {message}")
    if 400 <= status < 500:
        return _UpstreamInvalid(f"the upstream refused the request ({status}): {message}")
    return UpstreamFailedEarly(f"upstream answered {status}: {message}")


class _UpstreamInvalid(RejectedError, InvalidRequestError):
    """The upstream said the request itself is wrong (4xx): no other upstream would differ."""

    reason = "prompt_too_long"  # the only client error a validated request can still meet
    status = 400
    code = "invalid_request"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers.get("retry-after", ""))
    except ValueError:
        return None


__all__ = ["Chunk", "CircuitOpenError", "Route", "UpstreamStream"]
