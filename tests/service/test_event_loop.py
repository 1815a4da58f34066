"""A short request, answered or refused, stays on the event loop: no thread-pool hop.

Starlette runs a plain `def` dependency or exception handler on its worker threads; each hop is a
handoff between threads under the GIL, and under overload, where most answers are refusals,
those hops cost the front a tenth of its CPU. Every hop goes through `anyio.to_thread.run_sync`,
which this module counts while the real service answers real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio.to_thread
import pytest

from tests.support.service import RunningService

REQUESTS = [
    # (body, expected status): answered, refused by validation, refused by the model check
    ({"prompt": "Hello", "max_tokens": 2}, 200),
    ({"prompt": "Hello", "max_tokens": 2, "stream": True}, 200),
    ({"prompt": "x", "max_tokens": 0}, 400),
    ({"prompt": "x", "model": "gpt-9"}, 404),
]


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    seen: list[str] = []
    real = anyio.to_thread.run_sync

    async def counting(func: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(func, "__qualname__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    yield seen


@pytest.mark.parametrize(("body", "status"), REQUESTS)
def test_short_requests_take_no_thread_hop(
    service: RunningService, hops: list[str], body: dict[str, Any], status: int
) -> None:
    with service.client() as client:
        response = client.post("/v1/completions", json=body)
    assert response.status_code == status, response.text
    assert hops == []


def test_the_counter_sees_a_hop(service: RunningService, hops: list[str]) -> None:
    """The counter itself works: /metrics encodes its exposition on a worker thread."""
    with service.client() as client:
        assert client.get("/metrics").status_code == 200
    assert hops, "no thread hop was counted for /metrics"
