"""The async iterator a caller of `AsyncEngine.generate` reads outputs from."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from inference.backend import RequestOutput


class OutputStream:
    """Outputs arrive from the engine thread via `loop.call_soon_threadsafe(put)`; closing the
    stream before the final output cancels the request (client gone -> blocks freed)."""

    def __init__(self, request_id: str, cancel: Callable[[str], Awaitable[None]]):
        self.request_id = request_id
        self._cancel = cancel
        self._queue: asyncio.Queue[RequestOutput] = asyncio.Queue()
        self._done = False

    def put(self, output: RequestOutput) -> None:
        self._queue.put_nowait(output)

    def __aiter__(self) -> OutputStream:
        return self

    async def __anext__(self) -> RequestOutput:
        if self._done:
            raise StopAsyncIteration
        output = await self._queue.get()
        if output.finished:
            self._done = True
        return output

    async def aclose(self) -> None:
        if not self._done:
            self._done = True
            await self._cancel(self.request_id)
