"""A backend stream bound to its request record: every output updates the record, and the
request's end is recorded exactly once whichever way it ends (finished, failed, client gone).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from starlette.requests import Request

from inference.api.errors import ClientGone
from inference.backend import RequestOutput, RequestStream
from inference.telemetry.recorder import RequestRecord, RequestRecorder

T = TypeVar("T")


class TrackedStream:
    def __init__(
        self, stream: RequestStream, record: RequestRecord, recorder: RequestRecorder
    ) -> None:
        self._stream = stream
        self._outputs = aiter(stream)
        self.record = record
        self._recorder = recorder
        self.finished = False
        self.error: str | None = None
        self._recorded = False
        self._keep_text = recorder.log_prompts
        self._text: list[str] = []
        self.aborted = False  # cut by the server (shutdown), not failed by the engine
        self._end_callbacks: list[Callable[[TrackedStream], None]] = []

    async def next(self) -> RequestOutput | None:
        """The next output, or None once the request has finished."""
        if self.finished:
            return None
        try:
            output = await anext(self._outputs)
        except StopAsyncIteration:
            self.finished = True
            return None
        self._update(output)
        return output

    def _update(self, output: RequestOutput) -> None:
        record = self.record
        record.times = output.times
        record.prompt_tokens = output.prompt_tokens
        record.completion_tokens = output.completion_tokens
        if self._keep_text and output.text:
            self._text.append(output.text)
        if output.finished:
            self.finished = True
            record.finish_reason = output.finish_reason
            # "cancelled" here was not our doing (we stop reading once we cancel): a failure.
            if (output.finish_reason in ("error", "cancelled") or output.error) and not self.error:
                self.error = (
                    output.error or f"the engine ended this request ({output.finish_reason})"
                )
            if self._keep_text:
                record.completion_text = "".join(self._text)

    async def close(self) -> None:
        """Cancel the request in the engine (frees its KV blocks) unless it already finished;
        shielded so a cancelled caller (client gone) still completes it."""
        if self.finished:
            return
        self.finished = True
        with anyio.CancelScope(shield=True):
            await self._stream.aclose()

    async def abort(self, message: str) -> None:
        """The server ends this request (shutdown): its reader sees `error` and finishes."""
        if self.finished:
            return
        self.aborted = True
        self.error = message
        await self.close()

    def on_end(self, callback: Callable[[TrackedStream], None]) -> None:
        self._end_callbacks.append(callback)

    def end(self, outcome: str, status: int, error: str | None = None) -> None:
        if self._recorded:
            return
        self._recorded = True
        self._recorder.finished(self.record, outcome, status, error=error)
        self._ended()

    def end_rejected(self, reason: str, status: int) -> None:
        """Refused after it was accepted (admission cut it at its deadline): counted as a
        refusal with its reason, once, like any other end."""
        if self._recorded:
            return
        self._recorded = True
        self._recorder.rejected(self.record, reason, status)
        self._ended()

    def _ended(self) -> None:
        for callback in self._end_callbacks:
            callback(self)


async def unless_gone(awaitable: Awaitable[T], request: Request) -> T:
    """Await `awaitable`, but raise ClientGone as soon as the client disconnects meanwhile."""
    work = asyncio.ensure_future(awaitable)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
    if work.cancelled():
        raise ClientGone()
    return work.result()


async def _disconnected(request: Request) -> None:
    """Returns when the ASGI server reports the client gone (the body is already read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
