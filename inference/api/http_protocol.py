"""uvicorn's HTTP/1.1 protocol, answering malformed HTTP with an OpenAI error object: its own
400 for a request it cannot parse is plain text, the one answer of this server a client's
error handling could not read."""

from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class JsonErrorH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        body = json.dumps(
            {
                "error": {
                    "message": f"malformed HTTP request: {msg}",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "bad_http",
                }
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()
