"""CollectorGroup: isolation of sources, self-metrics, and log volume."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pytest
from prometheus_client.core import GaugeMetricFamily, Metric

from exporters.collector import CollectorGroup
from tests.support.exposition import exposition, value


class Flaky:
    """A queue-like source that fails while `broken` is set."""

    name = "queue"

    def __init__(self) -> None:
        self.broken = False

    def collect(self) -> Iterable[Metric]:
        if self.broken:
            raise RuntimeError("backend stats unavailable")
        return [GaugeMetricFamily("inferwatch_queue_depth", "Waiting requests.", value=3)]

    def on_error(self, exc: BaseException) -> Iterable[Metric]:
        raise ValueError("on_error broken too")


class Steady:
    name = "host"

    def collect(self) -> Iterable[Metric]:
        return [GaugeMetricFamily("inferwatch_host_memory_total_bytes", "Memory.", value=8)]

    def on_error(self, exc: BaseException) -> Iterable[Metric]:
        return []


def test_a_failing_source_and_its_on_error_leave_the_others_intact() -> None:
    flaky = Flaky()
    group = CollectorGroup([flaky, Steady()])
    flaky.broken = True
    text = exposition(group)
    assert value(text, "inferwatch_host_memory_total_bytes") == 8
    assert value(text, "inferwatch_queue_depth") is None
    assert value(text, "inferwatch_exporter_collect_errors_total", collector="queue") == 1
    assert value(text, "inferwatch_exporter_collect_errors_total", collector="host") == 0
    assert value(text, "inferwatch_exporter_collect_duration_seconds", collector="queue") >= 0
    assert group.errors("queue") == 1


def test_traceback_logged_once_per_failure_spell(caplog: pytest.LogCaptureFixture) -> None:
    flaky = Flaky()
    group = CollectorGroup([flaky])
    caplog.set_level(logging.INFO, logger="exporters.collector")
    flaky.broken = True
    for _ in range(3):
        exposition(group)
    flaky.broken = False
    exposition(group)
    flaky.broken = True
    exposition(group)
    failures = [r for r in caplog.records if "collector queue failed:" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info for r in failures)
    assert sum("recovered" in r.getMessage() for r in caplog.records) == 1
    assert group.errors("queue") == 4
