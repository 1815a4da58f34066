"""Faults the service must survive without hurting anyone: a storm of client disconnects, a
trace collector that never answers, and SIGKILL followed by a restart."""

from __future__ import annotations

import asyncio
import signal
import socket
import statistics
import time
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from inference.admission.config import AdmissionConfig
from inference.api.app import create_app
from inference.settings import Settings
from tests.support.exposition import total
from tests.support.serve_process import ServeProcess
from tests.support.service import RunningService, ServerThread, serve, small_engine
from tests.support.waiting import wait_until

LONG = {"prompt": "keep talking", "max_tokens": 1500, "ignore_eos": True, "stream": True}


@pytest.fixture(scope="module")
def service() -> Iterator[RunningService]:
    # The engine takes every leaver (running or queued); admission would refuse most of them.
    engine_only = Settings(admission=AdmissionConfig(admission_mode="off"))
    thread, app, backend, spans = serve(small_engine(max_num_seqs=16, max_waiting=64), engine_only)
    with thread as base_url:
        yield RunningService(app, backend, spans, base_url)


async def _leave_after_first_chunk(base_url: str) -> None:
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=60) as c,
        c.stream("POST", "/v1/completions", json=LONG) as r,
    ):
        async for line in r.aiter_lines():
            if line.startswith("data: {"):
                return  # closing the stream here disconnects mid-answer


async def _leave_while_queued(base_url: str) -> None:
    with pytest.raises(httpx.ReadTimeout):
        async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30, read=0.3)) as c:
            await c.post("/v1/completions", json={**LONG, "stream": False})


def test_disconnect_storm_frees_every_block_and_serves_on(service: RunningService) -> None:
    before = total(service.metrics_text(), "inferwatch_requests_total", outcome="cancelled")

    async def storm() -> None:
        leavers = [_leave_after_first_chunk(service.base_url) for _ in range(24)]
        leavers += [_leave_while_queued(service.base_url) for _ in range(24)]
        await asyncio.wait_for(asyncio.gather(*leavers), timeout=120)

    asyncio.run(storm())
    stats = lambda: service.backend.stats()  # noqa: E731
    assert wait_until(lambda: stats().kv.blocks_used == 0 and stats().running == 0, timeout=30)
    assert wait_until(lambda: sum(stats().waiting_by_priority.values()) == 0, timeout=30)
    cancelled = total(service.metrics_text(), "inferwatch_requests_total", outcome="cancelled")
    assert cancelled - before == 48
    with service.client() as c:
        assert c.post("/v1/completions", json={"prompt": "after", "max_tokens": 2}).is_success


@pytest.fixture
def blackhole() -> Iterator[str]:
    """Accepts TCP connections and never answers: a hung OTLP collector."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"http://127.0.0.1:{s.getsockname()[1]}/v1/traces"


def _median_latency(base_url: str, n: int) -> float:
    took = []
    with httpx.Client(base_url=base_url, timeout=30) as c:
        for i in range(n):
            start = time.monotonic()
            r = c.post("/v1/completions", json={"prompt": f"q{i}", "max_tokens": 4})
            assert r.status_code == 200
            took.append(time.monotonic() - start)
    return statistics.median(took)


def test_a_collector_that_never_answers_adds_no_request_latency(blackhole: str) -> None:
    """Spans export from the batch processor's own thread, so a hung collector costs requests
    nothing; both services are measured in the same run, alternately."""
    hung = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=blackhole, timeout=2)
    hung.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=50))
    apps = [
        create_app(Settings(), backend=small_engine(), tracer_provider=hung),
        create_app(Settings(), backend=small_engine(), tracer_provider=TracerProvider()),
    ]
    with ServerThread(apps[0]) as hung_url, ServerThread(apps[1]) as plain_url:
        _median_latency(hung_url, 3), _median_latency(plain_url, 3)  # warm up both
        with_hung = min(_median_latency(hung_url, 9) for _ in range(2))
        without = min(_median_latency(plain_url, 9) for _ in range(2))
    # Generous: a shared 2-core machine is noisy; a blocking export would add >= 2 s each.
    assert with_hung < without * 2 + 0.25, (with_hung, without)
    deadline = time.monotonic()
    hung.shutdown()  # bounded by the exporter timeout, not forever
    assert time.monotonic() - deadline < 15


@pytest.mark.timeout(600)  # two cold starts of the service
def test_sigkill_then_restart_serves_again() -> None:
    with ServeProcess() as first:
        port = first.port
        with httpx.Client(base_url=first.base_url, timeout=30) as c:
            assert c.post("/v1/completions", json={"prompt": "a", "max_tokens": 2}).is_success
        first.proc.send_signal(signal.SIGKILL)
        assert first.proc.wait(timeout=30) == -signal.SIGKILL
    # Same port at once: nothing survives a SIGKILL that a restart would trip on.
    with ServeProcess(port=port) as second, httpx.Client(base_url=second.base_url, timeout=30) as c:
        r = c.post("/v1/completions", json={"prompt": "b", "max_tokens": 2})
        assert r.is_success and r.json()["usage"]["completion_tokens"] == 2
