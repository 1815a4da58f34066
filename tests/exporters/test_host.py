"""HostSource on this machine's real psutil."""

from __future__ import annotations

import threading
import time
from typing import Any

import psutil

from exporters.collector import CollectorGroup
from exporters.host import HostSource
from tests.support.exposition import exposition, value


def test_cpu_ratio_spans_scrapes_from_different_threads() -> None:
    """psutil.cpu_percent(None) keeps its baseline per thread, so a threaded server (a new thread
    per scrape) would read ~0 each time; HostSource keeps one baseline shared by all threads."""
    group = CollectorGroup([HostSource()])
    first_done, release = threading.Event(), threading.Event()

    def first_scrape() -> None:
        exposition(group)
        first_done.set()
        release.wait(10)  # alive, so the second scrape's thread gets another ident

    first = threading.Thread(target=first_scrape)
    first.start()
    assert first_done.wait(10)
    before = psutil.cpu_times()
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:  # keep one core busy between the two scrapes
        pass
    after = psutil.cpu_times()
    out: list[str] = []
    second = threading.Thread(target=lambda: out.append(exposition(group)))
    second.start()
    second.join(10)
    release.set()
    first.join(10)

    ratio = value(out[0], "inferwatch_host_cpu_utilization_ratio")
    expected = _busy_share(before, after)
    assert ratio is not None
    assert expected > 0.25 / psutil.cpu_count()  # the busy loop did register
    assert abs(ratio - expected) < 0.25


def _busy_share(t0: Any, t1: Any) -> float:
    """Busy share between two psutil.cpu_times() readings (Linux: guest is inside user)."""
    delta = {field: getattr(t1, field) - getattr(t0, field) for field in t1._fields}
    total = sum(delta.values()) - delta["guest"] - delta["guest_nice"]
    return 1 - (delta["idle"] + delta["iowait"]) / total


def test_memory_in_bytes() -> None:
    text = exposition(CollectorGroup([HostSource()]))
    total = value(text, "inferwatch_host_memory_total_bytes")
    used = value(text, "inferwatch_host_memory_used_bytes")
    assert total == psutil.virtual_memory().total
    assert used is not None and 0 < used < total
    assert value(text, "inferwatch_exporter_collect_errors_total", collector="host") == 0
