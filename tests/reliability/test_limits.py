"""Request limits: a huge body, huge headers or a body that never arrives are refused before
the server reads them whole, with an OpenAI error object, and nobody else waits meanwhile."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from inference.settings import Settings
from tests.support.raw_http import RawConnection
from tests.support.service import RunningService, serve

LIMIT = 64 * 1024
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def service() -> Iterator[RunningService]:
    settings = Settings(max_body_bytes=LIMIT, max_header_bytes=8 * 1024, read_timeout=1.0)
    thread, app, backend, spans = serve(settings=settings)
    with thread as base_url:
        yield RunningService(app, backend, spans, base_url)


def _error(body: bytes) -> dict[str, str]:
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_body_over_the_limit_is_413_before_it_is_read(service: RunningService) -> None:
    body = json.dumps({"prompt": "x" * (2 * LIMIT), "max_tokens": 1}).encode()
    with RawConnection(service.base_url) as conn:
        status, headers, answer = conn.request("POST", "/v1/completions", body, JSON)
    assert status == 413 and headers.get("connection") == "close"
    assert _error(answer)["code"] == "request_too_large"


def test_chunked_body_over_the_limit_is_413(service: RunningService) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "'
        for _ in range(2 * LIMIT // 4096):
            yield b"x" * 4096
        yield b'"}'

    with service.client() as c:
        r = c.post("/v1/completions", content=chunks(), headers=JSON)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_body_under_the_limit_is_served(service: RunningService) -> None:
    with service.client() as c:
        r = c.post("/v1/completions", json={"prompt": "y" * 1000, "max_tokens": 1})
    assert r.status_code == 200, r.text


def test_headers_over_the_limit_are_431(service: RunningService) -> None:
    with RawConnection(service.base_url) as conn:
        status, _, answer = conn.request(
            "POST", "/v1/completions", b"{}", {**JSON, "x-padding": "p" * 20_000}
        )
    assert status == 431 and _error(answer)["code"] == "headers_too_large"


def test_body_that_never_arrives_is_408_and_others_are_served(service: RunningService) -> None:
    parts = urlsplit(service.base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as slow:
        head = (
            "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            "content-length: 100\r\n\r\n"
        )
        slow.sendall(head.encode() + b'{"prompt"')  # ... and nothing more
        start = time.monotonic()
        with httpx.Client(base_url=service.base_url, timeout=30) as other:
            assert other.post("/v1/completions", json={"prompt": "hi", "max_tokens": 1}).is_success
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = slow.recv(65536)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer
    assert time.monotonic() - start < 20
