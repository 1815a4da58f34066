"""HostSource on this machine's real psutil."""

from __future__ import annotations

import threading
import time

import psutil

from exporters.collector import CollectorGroup
from exporters.host import HostSource
from tests.exporters.conftest import exposition, value


def _collect_in_new_thread(group: CollectorGroup) -> str:
    """Like a ThreadingHTTPServer: every scrape from a fresh thread."""
    out: list[str] = []
    thread = threading.Thread(target=lambda: out.append(exposition(group)))
    thread.start()
    thread.join(10)
    return out[0]


def test_cpu_ratio_spans_scrapes_from_different_threads() -> None:
    """psutil.cpu_percent(None) keeps its baseline per thread, so a threaded server would read
    ~0 on every scrape; HostSource keeps one shared baseline."""
    group = CollectorGroup([HostSource()])
    _collect_in_new_thread(group)
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:  # keep one core busy between two scrapes
        pass
    ratio = value(_collect_in_new_thread(group), "inferwatch_host_cpu_utilization_ratio")
    assert ratio is not None
    # One busy core of N is 1/N; allow for the scheduler, but ~0 would be the per-thread bug.
    assert 0.25 / psutil.cpu_count() < ratio <= 1.0


def test_memory_in_bytes() -> None:
    text = exposition(CollectorGroup([HostSource()]))
    total = value(text, "inferwatch_host_memory_total_bytes")
    used = value(text, "inferwatch_host_memory_used_bytes")
    assert total == psutil.virtual_memory().total
    assert used is not None and 0 < used < total
    assert value(text, "inferwatch_exporter_collect_errors_total", collector="host") == 0
