"""One request's way through the backend, shared by /v1/completions and /v1/chat/completions.

Submit (rejections are recorded and raised for the error handlers), then either wait for the
whole answer or stream it. Both paths watch the client: a disconnect cancels the request in the
engine, which frees its KV blocks at once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from fastapi.responses import JSONResponse, Response
from starlette.requests import Request

from inference.admission.keys import KeyRing
from inference.admission.refusals import UnauthorizedError
from inference.api.auth import bearer_token
from inference.api.drain import SHUTDOWN_MESSAGE, Drain
from inference.api.errors import (
    CLIENT_CLOSED_REQUEST,
    ClientGone,
    GenerationFailedError,
    ModelNotFoundError,
    ParamError,
    ServerShutdownError,
    error_sse_payload,
)
from inference.api.formatting import DONE_EVENT, ResponseFormat, sse_event, usage_dict
from inference.api.response_metrics import note_reason
from inference.api.streaming import ClosingStreamingResponse
from inference.api.tracked import TrackedStream, unless_gone
from inference.backend import (
    Backend,
    GenerationRequest,
    Priority,
    RejectedError,
    RequestOutput,
    SamplingParams,
)
from inference.telemetry.recorder import RequestRecord, RequestRecorder

T = TypeVar("T")

# Below this many characters tokenising inline is cheaper than a thread hop (~50 us).
OFF_LOOP_CHARS = 8192


@dataclass
class Call:
    """A validated request, ready for the backend."""

    record: RequestRecord
    request: GenerationRequest
    stream: bool
    # stream_options.include_usage, as OpenAI does it: every chunk carries `"usage": null` and
    # one usage-only chunk (empty choices) comes last; without it, no usage in the stream.
    usage_chunk: bool
    api_key: str | None = None  # as presented; only the key ring looks at it


class GenerationService:
    """Turns validated API calls into backend requests and HTTP responses (one per app)."""

    def __init__(
        self, backend: Backend, recorder: RequestRecorder, keys: KeyRing | None = None
    ) -> None:
        self.backend = backend
        self.recorder = recorder
        self.keys = keys  # with a key file, every call needs a key that allows its priority
        self.drain = Drain()

    @property
    def model_name(self) -> str:
        return self.backend.model_name

    def check_key(self, request: Request) -> None:
        """With a key file, even listing the models needs a known key (as OpenAI's does)."""
        if self.keys is not None and not self.keys.known(bearer_token(request)):
            raise UnauthorizedError("a valid API key is required (Authorization: Bearer <key>)")

    def check_model(self, model: str | None) -> None:
        if model is not None and model != self.backend.model_name:
            raise ModelNotFoundError(model, self.backend.model_name)

    async def encode(self, text: str) -> list[int]:
        """Token ids of `text`; a long text is tokenised on a worker thread, so one large prompt
        does not stall every other request on the event loop."""
        encode = self.backend.tokenizer.encode
        if len(text) < OFF_LOOP_CHARS:
            return encode(text)
        return await anyio.to_thread.run_sync(encode, text)

    async def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        template = self.backend.tokenizer.apply_chat_template
        if sum(len(m["content"]) for m in messages) < OFF_LOOP_CHARS:
            return template(messages)
        return await anyio.to_thread.run_sync(template, messages)

    def parse_priority(self, body_value: str | None, header_value: str | None) -> Priority:
        """The one place a priority is parsed: exactly one of the documented values (the
        schema's enum), or none for `standard`."""
        raw = body_value if body_value is not None else header_value
        if raw is None:
            return Priority.STANDARD
        try:
            return Priority(raw)
        except ValueError:
            names = ", ".join(p.value for p in Priority)
            raise ParamError(
                f"unknown priority {raw!r}; use one of {names}", param="priority"
            ) from None

    def new_call(
        self,
        request: Request,
        *,
        operation: str,
        prompt_text: str,
        prompt_ids: list[int],
        sampling: SamplingParams,
        priority: Priority,
        stream: bool,
        include_usage: bool | None,
    ) -> Call:
        engine_id = uuid.uuid4().hex
        record = RequestRecord(
            request_id=getattr(request.state, "request_id", engine_id),
            model=self.backend.model_name,
            priority=priority.value,
            operation=operation,
            max_tokens=sampling.max_tokens,
            prompt_text=prompt_text if self.recorder.log_prompts else None,
        )
        greq = GenerationRequest(
            request_id=engine_id, prompt_token_ids=prompt_ids, sampling=sampling, priority=priority
        )
        return Call(
            record=record,
            request=greq,
            stream=stream,
            usage_chunk=include_usage is True,
            api_key=bearer_token(request),
        )

    def _submit(self, call: Call) -> TrackedStream:
        try:
            self.drain.admit()
            if self.keys is not None:
                tenant = self.keys.admit(call.api_key, call.request.priority)
                call.request.tenant = tenant.name  # from the key file: the engine may scope by it
            stream = self.backend.generate(call.request)
        except RejectedError as exc:
            self.recorder.rejected(call.record, exc.reason, exc.status)
            raise
        tracked = TrackedStream(stream, call.record, self.recorder)
        self.drain.track(tracked)
        return tracked

    async def respond(self, request: Request, call: Call, fmt: ResponseFormat) -> Response:
        tracked = self._submit(call)
        if call.stream:
            return await self._stream(request, call, fmt, tracked)
        return await self._whole(request, fmt, tracked)

    async def _whole(
        self, request: Request, fmt: ResponseFormat, tracked: TrackedStream
    ) -> Response:
        pieces: list[str] = []

        async def drain() -> None:
            while (output := await tracked.next()) is not None:
                pieces.append(output.text)

        await _settle(request, tracked, drain())
        record = tracked.record
        tracked.end("completed", 200)
        usage = usage_dict(record.prompt_tokens, record.completion_tokens)
        body = fmt.full("".join(pieces), record.finish_reason, usage)
        return JSONResponse(body, headers=timing_headers(record))

    async def _stream(
        self, request: Request, call: Call, fmt: ResponseFormat, tracked: TrackedStream
    ) -> Response:
        # Headers wait for the first output, so they carry the timings and an early failure
        # still gets a real HTTP status.
        first = await _settle(request, tracked, tracked.next())
        events = _sse_events(tracked, first, fmt, call, request.state)
        return ClosingStreamingResponse(
            events, media_type="text/event-stream", headers=timing_headers(tracked.record)
        )


async def _settle(request: Request, tracked: TrackedStream, work: Awaitable[T]) -> T:
    """Await `work` for this request. A client that leaves (ClientGone, answered 499 by the
    error handler) or a failure in the backend ends the request here, recorded once."""
    try:
        result = await unless_gone(work, request)
    except (ClientGone, asyncio.CancelledError):
        await tracked.close()
        tracked.end("cancelled", CLIENT_CLOSED_REQUEST)
        raise
    except RejectedError as exc:  # refused after acceptance (its deadline): the handler answers
        await tracked.close()
        tracked.end_rejected(exc.reason, exc.status)
        raise
    except Exception as exc:
        await tracked.close()
        tracked.end("failed", 500, error=f"{type(exc).__name__}: {exc}")
        raise GenerationFailedError(public_failure(tracked.record)) from exc
    if tracked.aborted:
        tracked.end("failed", 503, error=tracked.error)
        raise ServerShutdownError(SHUTDOWN_MESSAGE)
    if tracked.error is not None:
        tracked.end("failed", 500, error=tracked.error)
        raise GenerationFailedError(public_failure(tracked.record))
    return result


def public_failure(record: RequestRecord) -> str:
    """What a client is told of a failure: engine internals (exception text, tensor shapes)
    stay in the log line and the span, found there by the request id."""
    return (
        "generation failed: the engine could not finish this request "
        f"(request id {record.request_id}; the server log has the details)"
    )


async def _sse_events(
    tracked: TrackedStream,
    first: RequestOutput | None,
    fmt: ResponseFormat,
    call: Call,
    state: Any,  # the request's state, where the answer's reason is noted
) -> AsyncIterator[bytes]:
    outcome, status = "cancelled", CLIENT_CLOSED_REQUEST
    error: str | None = None
    refused: RejectedError | None = None
    record = tracked.record
    try:
        opening = fmt.opening_chunk()
        if opening is not None:
            yield sse_event(_with_usage_field(opening, call))
        output = first
        while output is not None:
            if output.finished:
                break
            if output.text:
                yield sse_event(_chunk(fmt, call, output.text, None))
            output = await tracked.next()
        if tracked.error is not None:
            outcome, status, error = "failed", 500, tracked.error
            message = SHUTDOWN_MESSAGE if tracked.aborted else public_failure(record)
            note_reason(state, "shutdown" if tracked.aborted else "generation_failed")
            yield sse_event(error_sse_payload(message))
            yield DONE_EVENT
            return
        outcome, status = "completed", 200
        last_text = output.text if output is not None else ""
        yield sse_event(_chunk(fmt, call, last_text, record.finish_reason))
        if call.usage_chunk:
            usage = usage_dict(record.prompt_tokens, record.completion_tokens)
            yield sse_event(fmt.usage_chunk(usage))
        yield DONE_EVENT
    except RejectedError as exc:  # its deadline passed mid-stream: said in-band, with its code
        refused = exc
        note_reason(state, exc.reason)
        payload = error_sse_payload(str(exc))
        payload["error"]["code"] = exc.code or exc.reason
        yield sse_event(payload)
        yield DONE_EVENT
    except Exception as exc:  # noqa: BLE001 - headers are out: report in-band, then end
        outcome, status, error = "failed", 500, f"{type(exc).__name__}: {exc}"
        note_reason(state, "generation_failed")
        yield sse_event(error_sse_payload(public_failure(record)))
        yield DONE_EVENT
    finally:
        await tracked.close()
        if refused is not None:
            tracked.end_rejected(refused.reason, refused.status)
        else:
            tracked.end(outcome, status, error=error)


def _chunk(fmt: ResponseFormat, call: Call, text: str, finish: str | None) -> dict[str, Any]:
    return _with_usage_field(fmt.chunk(text, finish), call)


def _with_usage_field(chunk: dict[str, Any], call: Call) -> dict[str, Any]:
    if call.usage_chunk:
        chunk["usage"] = None
    return chunk


def timing_headers(record: RequestRecord) -> dict[str, str]:
    headers: dict[str, str] = {}
    if record.queue_ms is not None:
        headers["x-inferwatch-queue-ms"] = f"{record.queue_ms:.3f}"
    if record.ttft_ms is not None:
        headers["x-inferwatch-ttft-ms"] = f"{record.ttft_ms:.3f}"
    return headers
