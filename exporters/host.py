"""Host CPU and memory from psutil, as a MetricSource for `CollectorGroup`.

CPU utilisation is "busy share since the previous scrape" (psutil.cpu_percent(interval=None)
semantics: never blocks a scrape). psutil keeps that baseline per calling thread, and a threaded
HTTP server scrapes from a new thread each time, which would always read ~0 since "the last call":
so this source keeps its own baseline, shared by every caller.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import psutil
from prometheus_client.core import Metric

from exporters.catalog import HOST_CPU_UTILIZATION, HOST_MEMORY_TOTAL, HOST_MEMORY_USED


class HostSource:
    """CPU busy ratio since the last collection (primed at construction) and memory in use."""

    name = "host"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_times = psutil.cpu_times()
        self._last_ratio: float | None = None

    def collect(self) -> Iterable[Metric]:
        families: list[Metric] = []
        ratio = self._cpu_ratio()
        if ratio is not None:
            families.append(HOST_CPU_UTILIZATION.family(ratio))
        memory = psutil.virtual_memory()
        families += [
            HOST_MEMORY_USED.family(memory.total - memory.available),
            HOST_MEMORY_TOTAL.family(memory.total),
        ]
        return families

    def on_error(self, exc: BaseException) -> Iterable[Metric]:
        return []

    def _cpu_ratio(self) -> float | None:
        """None until some CPU time has passed; repeats the last value within one clock tick."""
        with self._lock:
            now = psutil.cpu_times()
            total = _total(now) - _total(self._last_times)
            if total > 0:
                busy = _busy(now) - _busy(self._last_times)
                self._last_ratio = min(1.0, max(0.0, busy / total))
                self._last_times = now
            return self._last_ratio


def _total(times: Any) -> float:
    # Same accounting as psutil.cpu_percent: guest time is already inside user/nice on Linux.
    return sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def _busy(times: Any) -> float:
    return _total(times) - times.idle - getattr(times, "iowait", 0.0)
