"""The front's own HTTP/1.1 connections to its upstreams (inference/upstream/connection.py).

The peer is a scripted HTTP server on loopback rather than vLLM: these are the cases vLLM
cannot be made to produce on demand (an event split at every byte, a server that closes a
kept connection just as a request goes out on it, a reset mid-answer, a stall past the read
timeout). The front through a real vLLM is tested in test_answers.py, test_connections.py and
test_failover.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from inference.upstream.connection import ConnectionPool, UpstreamTransportError
from tests.support.serve_process import free_port

EVENTS = [b'data: {"choices":[{"text":"h\xc3\xa9"}]}\n\n', b"data: [DONE]\n\n"]
LINES = ['data: {"choices":[{"text":"hé"}]}', "", "data: [DONE]", ""]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


async def stream_answer(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> bool:
    writer.write(STREAM_HEAD + b"".join(chunk(e) for e in EVENTS) + b"0\r\n\r\n")
    await writer.drain()
    return True


class Scripted:
    """A loopback HTTP/1.1 server: `handler(reader, writer, nth request on this connection)`
    writes each answer and says whether the connection stays open."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.client_left = asyncio.Event()

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        nth = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                nth += 1
                if not await self.handler(reader, writer, nth):
                    break
            writer.close()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.client_left.set()  # the client closed its end


@pytest.fixture
async def pool() -> AsyncIterator[ConnectionPool]:
    connections = ConnectionPool(connect_timeout=5.0, read_timeout=30.0)
    yield connections
    await connections.aclose()


async def lines(pool: ConnectionPool, url: str) -> list[str]:
    async with pool.post(url, "/v1/completions", b"{}", {}) as answer:
        assert answer.status == 200
        return [line async for line in answer.lines()]


async def test_events_split_at_any_byte_arrive_as_whole_lines(pool: ConnectionPool) -> None:
    body = b"".join(EVENTS)

    async def split(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> bool:
        writer.write(STREAM_HEAD)
        for size in (1, 2, 3, 5, 7):  # every boundary falls somewhere new, mid-character too
            pieces = [body[i : i + size] for i in range(0, len(body), size)]
            writer.write(b"".join(chunk(p) for p in pieces))
        writer.write(chunk(body) + b"0\r\n\r\n")  # and both events in one chunk
        await writer.drain()
        return True

    async with Scripted(split) as server:
        assert await lines(pool, server.url) == LINES * 6


async def test_the_request_goes_out_as_sent(pool: ConnectionPool) -> None:
    async with Scripted(stream_answer) as server:
        headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
        async with pool.post(server.url + "/base/", "/v1/completions", b'{"a":1}', headers) as a:
            await a.read()
        head, body = server.requests[0].split(b"\r\n\r\n")
        lines_ = head.decode().split("\r\n")
        assert lines_[0] == "POST /base/v1/completions HTTP/1.1"
        assert f"Host: 127.0.0.1:{server.url.rsplit(':', 1)[1]}" in lines_
        assert "Content-Length: 7" in lines_
        assert f"traceparent: {headers['traceparent']}" in lines_
        assert body == b'{"a":1}'


async def test_one_connection_serves_answer_after_answer(pool: ConnectionPool) -> None:
    async with Scripted(stream_answer) as server:
        for _ in range(3):
            assert await lines(pool, server.url) == LINES
        assert server.connections == 1
        assert pool.opened == 1


async def test_connection_close_is_obeyed(pool: ConnectionPool) -> None:
    async def closing(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        return False

    async with Scripted(closing) as server:
        for _ in range(2):
            async with pool.post(server.url, "/x", b"{}", {}) as answer:
                assert await answer.read() == b"ok"
        assert server.connections == 2


async def test_a_kept_connection_closed_by_the_server_is_replaced(pool: ConnectionPool) -> None:
    """The server closes a kept connection as the next request goes out on it (its keep-alive
    timeout racing the request): the request is sent again, once, on a new connection."""

    async def second_request_closes(
        _r: asyncio.StreamReader, writer: asyncio.StreamWriter, nth: int
    ) -> bool:
        if nth == 2:
            return False  # closed without a byte of answer
        return await stream_answer(_r, writer, nth)

    async with Scripted(second_request_closes) as server:
        assert await lines(pool, server.url) == LINES
        assert await lines(pool, server.url) == LINES
        assert server.connections == 2
        assert len(server.requests) == 3


async def test_a_new_connection_that_fails_is_not_retried(pool: ConnectionPool) -> None:
    async def close_at_once(
        _r: asyncio.StreamReader, writer: asyncio.StreamWriter, nth: int
    ) -> bool:
        return False

    async with Scripted(close_at_once) as server:
        with pytest.raises(UpstreamTransportError):
            await lines(pool, server.url)
        assert len(server.requests) == 1  # the failover to another upstream is the caller's


async def test_an_error_answer_is_read_whole_and_the_connection_kept(
    pool: ConnectionPool,
) -> None:
    body = b'{"error":{"message":"busy"}}'

    async def busy(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, nth: int) -> bool:
        writer.write(
            b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 3\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        return True

    async with Scripted(busy) as server:
        for _ in range(2):
            async with pool.post(server.url, "/v1/completions", b"{}", {}) as answer:
                assert (answer.status, answer.headers["retry-after"]) == (503, "3")
                assert await answer.read() == body
        assert server.connections == 1


async def test_leaving_an_answer_early_closes_its_connection(pool: ConnectionPool) -> None:
    """How vLLM learns that the client left: its connection ends, and it aborts the request."""

    async def endless_then_normal(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, nth: int
    ) -> bool:
        if server.connections > 1:
            return await stream_answer(reader, writer, nth)
        writer.write(STREAM_HEAD + chunk(EVENTS[0]))
        await writer.drain()
        assert await reader.read() == b""  # until the client closes its end
        server.client_left.set()
        return False

    async with Scripted(endless_then_normal) as server:
        async with pool.post(server.url, "/v1/completions", b"{}", {}) as answer:
            async for line in answer.lines():
                assert line == LINES[0]
                break
        await asyncio.wait_for(server.client_left.wait(), timeout=10)
        assert await lines(pool, server.url) == LINES  # on a new connection: none was kept
        assert (pool.opened, server.connections) == (2, 2)


async def test_a_reset_mid_answer_fails_the_answer(pool: ConnectionPool) -> None:
    async def reset(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> bool:
        writer.write(STREAM_HEAD + chunk(EVENTS[0]) + b"40\r\ndata: {")
        await writer.drain()
        writer.transport.abort()
        return False

    async with Scripted(reset) as server:
        got: list[str] = []
        with pytest.raises(UpstreamTransportError, match="mid-answer|Reset"):
            async with pool.post(server.url, "/v1/completions", b"{}", {}) as answer:
                async for line in answer.lines():
                    got.append(line)
        assert got == LINES[:2]  # what arrived whole was delivered


async def test_silence_past_the_read_timeout_fails_the_answer() -> None:
    pool = ConnectionPool(connect_timeout=5.0, read_timeout=0.2)
    hold = asyncio.Event()

    async def silent(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> bool:
        writer.write(STREAM_HEAD + chunk(EVENTS[0]))
        await writer.drain()
        await hold.wait()
        return False

    async with Scripted(silent) as server:
        with pytest.raises(UpstreamTransportError, match="read timeout"):
            await asyncio.wait_for(lines(pool, server.url), timeout=20)
        hold.set()
    await pool.aclose()


async def test_nothing_listening_is_a_transport_error(pool: ConnectionPool) -> None:
    with pytest.raises(UpstreamTransportError, match="cannot connect"):
        await lines(pool, f"http://127.0.0.1:{free_port()}")


async def test_a_kept_connection_that_times_out_is_not_sent_again() -> None:
    """Only a connection closed before any answer is retried: a request the upstream holds past
    the read timeout may be running there, so it is not sent a second time."""
    pool = ConnectionPool(connect_timeout=5.0, read_timeout=0.2)
    hold = asyncio.Event()

    async def second_request_hangs(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, nth: int
    ) -> bool:
        if nth == 2:
            await hold.wait()
            return False
        return await stream_answer(reader, writer, nth)

    async with Scripted(second_request_hangs) as server:
        assert await lines(pool, server.url) == LINES
        with pytest.raises(UpstreamTransportError, match="read timeout"):
            await asyncio.wait_for(lines(pool, server.url), timeout=20)
        assert len(server.requests) == 2
        hold.set()
    await pool.aclose()
