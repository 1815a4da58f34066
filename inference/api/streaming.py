"""A StreamingResponse that always closes its body generator.

Starlette cancels the sending task when the client disconnects; if that happens while the
generator is parked at a `yield`, the generator is left for the garbage collector and its
`finally` (which cancels the engine request and frees KV blocks) runs at some unknown later
time. Closing it explicitly makes the cleanup immediate.
"""

from __future__ import annotations

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Send


class ClosingStreamingResponse(StreamingResponse):
    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()
