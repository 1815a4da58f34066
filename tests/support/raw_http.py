"""HTTP/1.1 over one raw socket: what a keep-alive client really sees (httpx would silently
open a new connection when the server drops one)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import h11


class RawConnection:
    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        self.host = parts.netloc
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        self.conn = h11.Connection(h11.CLIENT)

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body); raises ConnectionError if the server closed on us."""
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        all_headers = {"host": self.host, "content-length": str(len(body)), **(headers or {})}
        self._send(h11.Request(method=method, target=path, headers=list(all_headers.items())))
        if body:
            self._send(h11.Data(data=body))
        self._send(h11.EndOfMessage())
        status, got, chunks = 0, {}, []
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("the server closed the connection without an answer")
                self.conn.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
                got = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return status, got, b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("connection closed")

    def _send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
