"""Hostile input gets a clear 4xx (or, for a server bug, a 500) and the connection it came on
stays protocol-correct: the client's next request on the same keep-alive connection is answered.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from inference.backend import Backend
from inference.settings import Settings
from tests.support.raw_http import RawConnection
from tests.support.service import RunningService, serve, small_engine

JSON = {"content-type": "application/json"}
FINE = json.dumps({"prompt": "fine", "max_tokens": 2}).encode()


class _RaisingTokenizer:
    """Test double around the REAL tokenizer: a poison word raises an unexpected error, the
    kind of server bug no handler knows (the real tokenizer cannot be made to raise at will)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def encode(self, text: str) -> list[int]:
        if "explode" in text:
            raise RuntimeError("tokenizer bug")
        return self.inner.encode(text)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def service() -> Iterator[RunningService]:
    backend: Backend = small_engine()
    backend.tokenizer = _RaisingTokenizer(backend.tokenizer)  # type: ignore[assignment]
    thread, app, backend, spans = serve(backend)
    with thread as base_url:
        yield RunningService(app, backend, spans, base_url)


@pytest.mark.parametrize(
    ("path", "raw", "param"),
    [
        ("/v1/completions", '{"prompt": "a\\ud800b", "max_tokens": 2}', "prompt"),
        ("/v1/completions", '{"prompt": ["\\udfff"], "max_tokens": 2}', "prompt"),
        ("/v1/completions", '{"prompt": "x", "stop": ["\\ud800"]}', "stop"),
        ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "\\ud83d"}]}',
         "messages"),
        ("/v1/chat/completions",
         '{"messages": [{"role": "user", "content": [{"type": "text", "text": "\\ud800"}]}]}',
         "messages"),
    ],
)  # fmt: skip
def test_lone_surrogate_is_a_400_naming_the_field_and_the_connection_lives(
    service: RunningService, path: str, raw: str, param: str
) -> None:
    with RawConnection(service.base_url) as conn:
        status, _, body = conn.request("POST", path, raw.encode(), JSON)
        assert status == 400, body
        error = json.loads(body)["error"]
        assert error["param"] == param and "invalid Unicode" in error["message"]
        assert conn.request("POST", "/v1/completions", FINE, JSON)[0] == 200


def test_malformed_json_names_no_byte_offset_as_parameter(service: RunningService) -> None:
    with RawConnection(service.base_url) as conn:
        status, _, body = conn.request("POST", "/v1/completions", b'{"prompt": "x",, }', JSON)
    assert status == 400
    error = json.loads(body)["error"]
    assert error["param"] is None and "not valid JSON" in error["message"]


def test_unexpected_error_is_a_500_object_and_the_connection_lives(
    service: RunningService,
) -> None:
    with RawConnection(service.base_url) as conn:
        bad = json.dumps({"prompt": "explode", "max_tokens": 2}).encode()
        status, headers, body = conn.request("POST", "/v1/completions", bad, JSON)
        assert status == 500
        error = json.loads(body)["error"]
        assert error["type"] == "server_error" and "tokenizer bug" not in error["message"]
        assert "x-request-id" in headers
        assert conn.request("POST", "/v1/completions", FINE, JSON)[0] == 200


def test_malformed_http_gets_an_error_object(service: RunningService) -> None:
    parts = service.base_url.removeprefix("http://").split(":")
    with socket.create_connection((parts[0], int(parts[1])), timeout=30) as s:
        s.sendall(b"GARBAGE \x00\x01 HTTP/9\r\n\r\n")
        answer = b""
        while data := s.recv(65536):
            answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head
    assert json.loads(body)["error"]["code"] == "bad_http"


@pytest.mark.parametrize(("trusted", "expected"), [("", "127.0.0.1"), ("127.0.0.1", "6.6.6.6")])
def test_forwarded_for_is_believed_only_from_configured_proxies(
    trusted: str, expected: str
) -> None:
    thread, app, backend, spans = serve(small_engine(), Settings(trusted_proxies=trusted))
    with thread as base_url:
        service = RunningService(app, backend, spans, base_url)
        with service.client() as c:
            r = c.post(
                "/v1/completions",
                json={"prompt": "hi", "max_tokens": 1},
                headers={"x-forwarded-for": "6.6.6.6"},
            )
        assert r.status_code == 200
        (server,) = service.server_spans(1)
    assert (server.attributes or {})["client.address"] == expected
