"""Isolation and self-metrics for custom collectors.

prometheus-client turns an exception inside `collect()` into an HTTP 500 for the whole scrape,
so every source runs inside one `CollectorGroup` that catches, times and counts each source and
reports the results as single `inferwatch_exporter_collect_*` families labelled by collector.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Protocol

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporters.catalog import COLLECT_DURATION, COLLECT_ERRORS

log = logging.getLogger(__name__)


class MetricSource(Protocol):
    """One source of metric families (gpu, host, queue)."""

    name: str

    def collect(self) -> Iterable[Metric]:
        """Fresh families; may raise, the group contains it."""
        ...

    def on_error(self, exc: BaseException) -> Iterable[Metric]:
        """Families to expose when `collect()` failed (e.g. `inferwatch_gpu_up 0`)."""
        ...


class CollectorGroup(Collector):
    """Runs sources in order; one failing source never fails the others or the scrape."""

    def __init__(self, sources: Sequence[MetricSource]):
        self.sources = list(sources)
        self._errors = {s.name: 0 for s in self.sources}
        self._failing: dict[str, str] = {}  # source -> type of its current failure
        self._lock = threading.Lock()

    def describe(self) -> Iterable[Metric]:
        # No hardware calls at registration; tests check every family against the catalog
        # (exporters/catalog.py), which docs/metrics.md is generated from.
        return []

    def errors(self, name: str) -> int:
        with self._lock:
            return self._errors[name]

    def collect(self) -> Iterable[Metric]:
        duration = COLLECT_DURATION.family()
        families: list[Metric] = []
        for source in self.sources:
            start = time.perf_counter()
            try:
                families.extend(source.collect())
            except Exception as exc:  # noqa: BLE001 - a scrape must survive any source failure
                self._note_failure(source.name, exc)
                try:
                    families.extend(source.on_error(exc))
                except Exception:  # noqa: BLE001
                    log.exception("collector %s failed in on_error", source.name)
            else:
                self._note_success(source.name)
            duration.add_metric([source.name], time.perf_counter() - start)
        errors = COLLECT_ERRORS.family()
        with self._lock:
            for name, count in self._errors.items():
                errors.add_metric([name], count)
        return [*families, duration, errors]

    def _note_failure(self, name: str, exc: Exception) -> None:
        """Counts every failure but logs a traceback only when a source starts failing (or fails
        differently): a host without a GPU would otherwise log one on every scrape."""
        kind = type(exc).__name__
        with self._lock:
            self._errors[name] += 1
            changed = self._failing.get(name) != kind
            self._failing[name] = kind
        if changed:
            log.warning("collector %s failed: %s", name, exc, exc_info=True)
        else:
            log.debug("collector %s failed again: %s", name, exc)

    def _note_success(self, name: str) -> None:
        with self._lock:
            recovered = self._failing.pop(name, None) is not None
        if recovered:
            log.info("collector %s recovered", name)
