"""Limits on what one request may make the server read: header size, body size, and how long
the body may take to arrive. Checked before the body is read whole, so a 20 MB body or a client
that sends one byte a minute costs nothing and stalls nobody else.

Plain ASGI, outside FastAPI's routing, answering with OpenAI error objects and
`Connection: close` (the unread rest of a refused body must not be taken for the next request).
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inference.api.errors import error_response
from inference.api.response_metrics import note_reason

_WITH_BODY = {"POST", "PUT", "PATCH"}
# error code -> the reason inferwatch_http_responses_total counts it under
_REASONS = {
    "request_too_large": "request_too_large",
    "headers_too_large": "headers_too_large",
    "request_timeout": "request_timeout",
    "bad_request": "invalid_request",
}


class _Refused(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RequestLimitsMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, max_header_bytes: int, read_timeout: float
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self._check_head(scope)
        except _Refused as refused:
            await _answer(refused, scope, receive, send)
            return
        if scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_body(receive)
        except _Refused as refused:
            await _answer(refused, scope, receive, send)
            return
        if body is None:  # the client left before its body arrived: nobody to answer
            return
        replayed = False

        async def replay() -> Message:
            """The body once, then the real channel (a later disconnect must still arrive)."""
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, bounded in size and time. FastAPI turns any error raised while it
        reads a body into a 400, so the limits are enforced here, before the app runs."""
        chunks: list[bytes] = []
        received = 0
        deadline = asyncio.get_running_loop().time() + self.read_timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0.0))
            except TimeoutError:
                raise _Refused(
                    408, f"the request body did not arrive within {self.read_timeout:g} s",
                    "request_timeout",
                ) from None  # fmt: skip
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_bytes:
                raise _Refused(413, self._too_large(), "request_too_large")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _check_head(self, scope: Scope) -> None:
        headers = scope.get("headers", ())
        size = sum(len(k) + len(v) + 4 for k, v in headers)
        if size > self.max_header_bytes:
            raise _Refused(
                431,
                f"request headers are {size} bytes; this server takes at most "
                f"{self.max_header_bytes}",
                "headers_too_large",
            )
        for name, value in headers:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise _Refused(400, "content-length is not a number", "bad_request") from None
                if length > self.max_body_bytes:
                    raise _Refused(413, self._too_large(length), "request_too_large")

    def _too_large(self, length: int | None = None) -> str:
        size = f"{length} bytes" if length is not None else "larger"
        return f"the request body is {size}; this server takes at most {self.max_body_bytes}"


async def _answer(refused: _Refused, scope: Scope, receive: Receive, send: Send) -> None:
    note_reason(scope.setdefault("state", {}), _REASONS[refused.code])
    response = error_response(
        refused.status, str(refused), code=refused.code, headers={"connection": "close"}
    )
    await response(scope, receive, send)
