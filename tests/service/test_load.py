"""Nothing lost under load, and a client that leaves gives its KV blocks back at once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from inference.backend import Priority
from tests.support.exposition import total
from tests.support.service import RunningService, serve, small_engine
from tests.support.waiting import wait_until

LONG = {"prompt": "keep talking", "max_tokens": 1500, "temperature": 0}


@pytest.fixture(scope="module")
def tight_service() -> Iterator[RunningService]:
    """Few running sequences and a short queue, so a burst overflows it."""
    thread, app, backend, spans = serve(small_engine(max_num_seqs=8, max_waiting=8))
    with thread as base_url:
        yield RunningService(app, backend, spans, base_url)


def _cancelled(service: RunningService) -> float:
    return total(service.metrics_text(), "inferwatch_requests_total", outcome="cancelled")


def test_disconnect_mid_stream_frees_kv_blocks(service: RunningService) -> None:
    before = _cancelled(service)
    with (
        service.client() as c,
        c.stream("POST", "/v1/completions", json={**LONG, "stream": True}) as r,
    ):
        assert r.status_code == 200
        lines = r.iter_lines()
        received = [next(lines) for _ in range(6)]
        assert any(line.startswith("data: {") for line in received)
        assert service.backend.stats().kv.blocks_used > 0
    # The connection is closed here, long before 1500 tokens.
    assert wait_until(lambda: service.backend.stats().kv.blocks_used == 0, timeout=10)
    assert wait_until(lambda: _cancelled(service) == before + 1, timeout=10)


def test_disconnect_while_waiting_for_whole_answer_frees_kv_blocks(
    service: RunningService,
) -> None:
    before = _cancelled(service)
    started = time.monotonic()
    with service.client(timeout=1.0) as c, pytest.raises(httpx.ReadTimeout):
        c.post("/v1/completions", json=LONG)
    assert time.monotonic() - started < 5
    assert wait_until(lambda: service.backend.stats().kv.blocks_used == 0, timeout=10)
    assert wait_until(lambda: _cancelled(service) == before + 1, timeout=10)


async def test_burst_of_100_mixed_priority_requests_all_accounted(
    tight_service: RunningService,
) -> None:
    svc = tight_service
    before = svc.metrics_text()
    priorities = [p.value for p in Priority]

    async def one(client: httpx.AsyncClient, i: int) -> tuple[str, int, str | None]:
        priority = priorities[i % 3]
        body = {
            "prompt": f"request {i}",
            "max_tokens": 16,
            "ignore_eos": True,
            "stream": i % 2 == 0,
        }
        if i % 4 == 0:
            r = await client.post("/v1/completions", json=body, headers={"x-priority": priority})
        else:
            r = await client.post("/v1/completions", json={**body, "priority": priority})
        return priority, r.status_code, r.headers.get("retry-after")

    limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=svc.base_url, timeout=60, limits=limits) as client:
        results = await asyncio.wait_for(
            asyncio.gather(*(one(client, i) for i in range(100))), timeout=120
        )
    statuses = Counter(status for _, status, _ in results)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] > 0 and statuses[200] > 0, statuses
    # Honest waits (inference/admission/retry_after.py): whole seconds the openai client obeys.
    assert all(retry and 1 <= int(retry) <= 120 for _, status, retry in results if status == 503)

    after = svc.metrics_text()

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("inferwatch_requests_total") == 100
    assert delta("inferwatch_requests_total", outcome="completed") == statuses[200]
    assert delta("inferwatch_requests_total", outcome="rejected") == statuses[503]
    refused = sum(
        delta("inferwatch_request_rejections_total", reason=reason)
        for reason in ("queue_full", "concurrency_limit")  # the engine's queue, or admission's
    )
    assert refused == statuses[503]
    for priority in priorities:
        sent = sum(1 for p, _, _ in results if p == priority)
        assert delta("inferwatch_requests_total", priority=priority) == sent
    assert wait_until(lambda: svc.backend.stats().kv.blocks_used == 0, timeout=10)


def test_stream_abandoned_while_queued_leaves_the_queue() -> None:
    """Headers wait for the first token; a client that gives up before then is cancelled too."""
    thread, _, backend, _ = serve(small_engine(max_num_seqs=1))
    with thread as base_url, httpx.Client(base_url=base_url, timeout=60) as c:
        with c.stream("POST", "/v1/completions", json={**LONG, "stream": True}) as busy:
            assert busy.status_code == 200  # the only running slot is taken
            with (
                httpx.Client(base_url=base_url, timeout=1.0) as impatient,
                pytest.raises(httpx.ReadTimeout),
            ):
                impatient.post("/v1/completions", json={**LONG, "stream": True})
            assert wait_until(lambda: sum(backend.stats().waiting_by_priority.values()) == 0)
            assert backend.stats().running == 1
        assert wait_until(lambda: backend.stats().kv.blocks_used == 0)
        text = c.get("/metrics").text
    assert total(text, "inferwatch_requests_total", outcome="cancelled") == 2
    assert total(text, "inferwatch_queue_wait_seconds_count") == 1  # only `busy` ran
