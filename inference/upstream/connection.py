"""Keep-alive HTTP/1.1 connections to the upstreams, for the one call on the hot path: the
streamed POST of a completion, read line by line as its server-sent events arrive.

Why not httpx here (it still serves the health checks and /metrics): every event of a stream
went through about ten layers of httpx's and httpcore's async generators and h11's state
machine, a quarter of the front's CPU in a profile under load in front of vLLM, on a machine
where the front and vLLM share the cores, so what the front spends is taken from vLLM. Here an
event is two reads from asyncio's own stream reader (the chunk's size line, then the chunk).

What a client of a server owes it is kept: a connection goes back to the pool only after its
answer was read to the end and neither side said `Connection: close`; an idle one is dropped
before the server's keep-alive timeout (uvicorn's, which vLLM uses, is 5 s) and when the server
closed it; a request on a reused connection that the server had closed in the meantime is sent
again once on a new one (nothing of it had been read); leaving an answer early closes its
connection, which is how vLLM learns to abort the request and free its KV cache.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Idle connections are dropped after this long: below uvicorn's 5 s keep-alive timeout, so the
# server does not close one under a request being sent on it.
KEEPALIVE_SECONDS = 4.0
MAX_IDLE = 256  # idle connections kept per upstream
HEAD_LIMIT = 65536  # bytes of status line and headers


class UpstreamTransportError(Exception):
    """The connection failed: refused, reset, timed out, or the answer was not HTTP/1.1."""


class _ClosedWhileIdle(Exception):
    """A kept connection the server had closed: nothing of the request was answered."""


@dataclass(frozen=True)
class Origin:
    """Where one upstream's requests go: host, port, TLS, and the base URL's path."""

    host: str
    port: int
    tls: bool
    prefix: str

    @classmethod
    def of(cls, url: str) -> Origin:
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        if parts.hostname is None:
            raise ValueError(f"no host in {url!r}")
        return cls(parts.hostname, parts.port or (443 if tls else 80), tls, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        default = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0
    reused: bool = False

    def usable(self, now: float) -> bool:
        """Still open on both sides, and not idle so long that the server may close it."""
        return (
            not self.reader.at_eof()
            and not self.writer.is_closing()
            and now - self.idle_since < KEEPALIVE_SECONDS
        )

    def close(self) -> None:
        self.writer.transport.abort()


class _Silence:
    """The read timeout: the connection is cut when nothing arrived for `seconds`. One timer
    per answer, moved on only when it fires (a timer per read would cost more than the read)."""

    def __init__(self, connection: _Connection, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._connection = connection
        self._seconds = seconds
        self.heard = self._loop.time()
        self.expired = False
        self._timer = self._loop.call_later(seconds, self._check)

    def _check(self) -> None:
        left = self.heard + self._seconds - self._loop.time()
        if left > 0:
            self._timer = self._loop.call_later(left, self._check)
            return
        self.expired = True
        self._connection.close()

    def hear(self) -> None:
        self.heard = self._loop.time()

    def cancel(self) -> None:
        self._timer.cancel()


@dataclass
class Answer:
    """One upstream answer: status and headers (names in lower case), then its body."""

    status: int
    headers: dict[str, str]
    _connection: _Connection = field(repr=False)
    _silence: _Silence = field(repr=False)
    complete: bool = False  # the body was read to its end

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self._body()])

    async def lines(self) -> AsyncIterator[str]:
        """The body's lines without their line ends, as each arrives (a server-sent event's
        `data:` line and the blank line after it); the body is read to its end."""
        rest = b""
        async for piece in self._body():
            data = rest + piece if rest else piece
            start = 0
            while (end := data.find(b"\n", start)) >= 0:
                yield data[start:end].rstrip(b"\r").decode("utf-8", "replace")
                start = end + 1
            rest = data[start:]
        if rest:
            yield rest.decode("utf-8", "replace")

    async def _body(self) -> AsyncIterator[bytes]:
        reader, silence = self._connection.reader, self._silence
        try:
            if self.headers.get("transfer-encoding", "").lower().endswith("chunked"):
                while size := int((await reader.readuntil(b"\n")).split(b";", 1)[0], 16):
                    silence.hear()
                    yield (await reader.readexactly(size + 2))[:-2]  # the chunk and its CRLF
                while (await reader.readuntil(b"\n")).strip():
                    pass  # trailers, up to the blank line
            elif (length := self.headers.get("content-length")) is not None:
                left = int(length)
                while left > 0:
                    if not (piece := await reader.read(min(left, HEAD_LIMIT))):
                        raise asyncio.IncompleteReadError(b"", left)
                    left -= len(piece)
                    silence.hear()
                    yield piece
            else:  # delimited by the connection's end: it cannot be kept
                self.headers["connection"] = "close"
                while piece := await reader.read(HEAD_LIMIT):
                    silence.hear()
                    yield piece
            self.complete = True
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            raise self._failure(e) from e

    def _failure(self, exc: BaseException) -> UpstreamTransportError:
        if self._silence.expired:
            return UpstreamTransportError("the upstream was silent past the read timeout")
        if isinstance(exc, asyncio.IncompleteReadError):
            return UpstreamTransportError("the upstream closed the connection mid-answer")
        return UpstreamTransportError(f"{type(exc).__name__}: {exc}")


class ConnectionPool:
    """Connections to any number of upstreams, kept per origin between requests."""

    def __init__(self, *, connect_timeout: float, read_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[Origin, list[_Connection]] = {}
        self._origins: dict[str, Origin] = {}
        self._tls: ssl.SSLContext | None = None
        self.opened = 0  # connections opened so far (for tests and the curious)

    @asynccontextmanager
    async def post(
        self, base_url: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> AsyncIterator[Answer]:
        """POST `body` (JSON) to `base_url` + `path`; the answer as soon as its headers are in.
        Leaving before the body's end closes the connection."""
        origin = self._origins.get(base_url) or self._origins.setdefault(
            base_url, Origin.of(base_url)
        )
        request = _request_bytes(origin, path, body, headers)
        answer = await self._send(origin, request)
        connection = answer._connection
        try:
            yield answer
        finally:
            answer._silence.cancel()
            if answer.complete and answer.headers.get("connection", "").lower() != "close":
                self._release(origin, connection)
            else:
                connection.close()

    async def _send(self, origin: Origin, request: bytes) -> Answer:
        while True:
            connection = await self._take(origin)
            try:
                return await self._exchange(connection, request)
            except _ClosedWhileIdle:
                connection.close()  # its keep-alive timeout raced the request: send it again
            except UpstreamTransportError:
                connection.close()
                raise

    async def _exchange(self, connection: _Connection, request: bytes) -> Answer:
        silence = _Silence(connection, self.read_timeout)
        try:
            connection.writer.write(request)
            await connection.writer.drain()
            head = await connection.reader.readuntil(b"\r\n\r\n")
            status, headers = _parse_head(head)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            silence.cancel()
            if silence.expired:
                raise UpstreamTransportError("no answer within the read timeout") from e
            unanswered = isinstance(e, asyncio.IncompleteReadError) and not e.partial
            if connection.reused and (
                unanswered or isinstance(e, (BrokenPipeError, ConnectionResetError))
            ):
                raise _ClosedWhileIdle from e
            raise UpstreamTransportError(f"{type(e).__name__}: {e}") from e
        return Answer(status, headers, connection, silence)

    async def _take(self, origin: Origin) -> _Connection:
        """The most recently used idle connection that is still good, else a new one."""
        idle = self._idle.get(origin)
        now = asyncio.get_running_loop().time()
        while idle:
            connection = idle.pop()
            if connection.usable(now):
                connection.reused = True
                return connection
            connection.close()
        if origin.tls and self._tls is None:
            self._tls = ssl.create_default_context()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    origin.host, origin.port, ssl=self._tls if origin.tls else None,
                    limit=HEAD_LIMIT,
                ),
                self.connect_timeout,
            )  # fmt: skip
        except OSError as exc:  # TimeoutError included
            reason = str(exc) or "timed out"
            raise UpstreamTransportError(
                f"cannot connect to {origin.host_header}: {reason}"
            ) from exc
        self.opened += 1
        return _Connection(reader, writer)

    def _release(self, origin: Origin, connection: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= MAX_IDLE:
            connection.close()
            return
        connection.idle_since = asyncio.get_running_loop().time()
        idle.append(connection)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


def _request_bytes(origin: Origin, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    lines = [
        f"POST {origin.prefix}{path} HTTP/1.1",
        f"Host: {origin.host_header}",
        "Content-Type: application/json",
        "Accept: text/event-stream",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status and headers of an HTTP/1.x answer; ValueError if it is not one."""
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x answer: {status_line[:80]!r}")
    status = int(rest[:3])
    headers: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers["connection"] = "close"
    return status, headers
