"""Queue and KV-cache gauges are read live at scrape time, and a failing read never breaks
the scrape."""

from __future__ import annotations

import contextlib
import threading

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporters.collector import CollectorGroup
from inference.backend import BackendStats
from inference.telemetry.engine_state import QueueSource
from tests.support.exposition import total
from tests.support.service import serve, small_engine
from tests.support.waiting import wait_until

LONG = {"prompt": "keep going", "max_tokens": 1500, "temperature": 0, "stream": True}


def test_gauges_show_the_engine_as_of_the_scrape() -> None:
    thread, _, backend, _ = serve(small_engine(max_num_seqs=1))
    with thread as base_url, httpx.Client(base_url=base_url, timeout=60) as c:
        with c.stream("POST", "/v1/completions", json=LONG) as busy:
            assert busy.status_code == 200
            queued_done = threading.Event()

            def queued() -> None:
                # Gives up (and is cancelled) well after the scrape below.
                with (
                    httpx.Client(base_url=base_url, timeout=4.0) as other,
                    contextlib.suppress(httpx.ReadTimeout),
                ):
                    other.post("/v1/completions", json={**LONG, "priority": "batch"})
                queued_done.set()

            threading.Thread(target=queued, daemon=True).start()
            assert wait_until(lambda: backend.stats().waiting_by_priority.get("batch", 0) == 1)
            text = c.get("/metrics").text
            assert total(text, "inferwatch_queue_depth", priority="batch") == 1
            assert total(text, "inferwatch_queue_depth", priority="premium") == 0
            assert total(text, "inferwatch_queue_oldest_wait_seconds", priority="batch") > 0
            assert total(text, "inferwatch_requests_running") == 1
            assert total(text, "inferwatch_requests_waiting") == 1  # every priority together
            assert 0 < total(text, "inferwatch_kv_cache_usage_ratio") < 1
            used = total(text, "inferwatch_kv_cache_blocks", state="used")
            free = total(text, "inferwatch_kv_cache_blocks", state="free")
            cached = total(text, "inferwatch_kv_cache_blocks", state="cached")
            assert used > 0 and used + free + cached == backend.stats().kv.blocks_total
            assert queued_done.wait(15)
        assert wait_until(lambda: backend.stats().kv.blocks_used == 0)
        idle = c.get("/metrics").text
    assert total(idle, "inferwatch_queue_depth") == 0
    assert total(idle, "inferwatch_requests_running") == 0
    assert total(idle, "inferwatch_requests_waiting") == 0
    assert total(idle, "inferwatch_kv_cache_info", block_size="16", num_blocks="256") == 1


def test_a_failing_stats_read_leaves_the_scrape_intact(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = small_engine()

    def broken() -> BackendStats:
        raise RuntimeError("stats unavailable")

    monkeypatch.setattr(backend, "stats", broken)
    registry = CollectorRegistry()
    registry.register(CollectorGroup([QueueSource(backend)]))
    text = generate_latest(registry).decode()
    assert "inferwatch_queue_depth" not in text  # no stale or invented values
    assert total(text, "inferwatch_exporter_collect_errors_total", collector="queue") == 1
