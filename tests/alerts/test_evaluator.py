"""The in-process evaluator's own contract: bounded memory, clock handling, the loop runner."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.metrics_core import Metric

from alerts.evaluator import AlertState, Evaluator
from alerts.samples import SampleBuffer
from alerts.spec import SPEC


def _queue_registry() -> tuple[CollectorRegistry, Gauge]:
    registry = CollectorRegistry()
    depth = Gauge("inferwatch_queue_depth", "waiting", ["model", "priority"], registry=registry)
    return registry, depth


def test_memory_stays_bounded_over_a_long_run() -> None:
    """With traffic, so SLIs exist and their histories fill: queue depth and the error ratio
    (0 failures), one series each. One process is its own fleet, so each keeps one history,
    not a second for the fleet."""
    from prometheus_client import Counter

    registry, depth = _queue_registry()
    requests = Counter("inferwatch_requests_total", "done", ["model", "priority", "outcome"],
                       registry=registry)  # fmt: skip
    evaluator = Evaluator(SPEC, registry)
    timing = SPEC.in_process
    series = 2  # queue depth and error ratio of m1
    history_cap = series * ((timing.baseline_window + timing.baseline_offset) / timing.interval + 2)
    filled = 0
    for t in range(3 * int(timing.baseline_window + timing.baseline_offset)):
        depth.labels("m1", "batch").set(t % 7)
        requests.labels("m1", "batch", "completed").inc(2)  # 2 req/s: above 30 per 30 s
        evaluator.step(float(t))
        snapshots, sli_samples = evaluator.footprint
        assert snapshots <= timing.rate_window / timing.interval + 2
        assert sli_samples <= history_cap
        filled = max(filled, sli_samples)
    assert filled >= history_cap - 3 * series  # the bound was reached, not avoided


def test_buffer_refuses_time_going_backwards() -> None:
    buffer = SampleBuffer(retention_ms=10_000, max_snapshots=4)
    buffer.append(1000, {})
    with pytest.raises(ValueError, match="not after"):
        buffer.append(1000, {})


def test_cold_start_fires_on_the_third_evaluation_without_prometheus() -> None:
    """Queue depth above the cold-start threshold, with traffic: no baseline exists yet."""
    from prometheus_client import Counter

    registry, depth = _queue_registry()
    requests = Counter("inferwatch_requests_total", "done", ["model", "priority", "outcome"],
                       registry=registry)  # fmt: skip
    now = [100.0]
    evaluator = Evaluator(SPEC, registry, clock=lambda: now[0])
    states: list[list[AlertState]] = []
    for _ in range(4):
        depth.labels("m1", "standard").set(60)
        depth.labels("m1", "batch").set(20)  # priorities add up: 80 > 50
        depth.labels("m2", "standard").set(40)  # another model stays below the threshold
        # 20 served a second: the 2nd sample's rate already holds 30 requests per 30 s window.
        requests.labels("m1", "standard", "completed").inc(20)
        requests.labels("m2", "standard", "completed").inc(20)
        states.append(evaluator.step())  # the clock, not an argument, says when
        now[0] += 1.0
    # Rates need two samples: pending from the 2nd step, firing at the 4th (3rd true one).
    assert states[0] == []
    assert [s.state for s in states[1]] == ["pending"]
    assert [s.state for s in states[3]] == ["firing"]
    firing = states[3][0]
    assert (firing.alert, firing.model, firing.basis) == (
        "InferwatchQueueDepthAboveBaseline", "m1", "cold_start",
    )  # fmt: skip
    assert firing.baseline is None and firing.value == 80
    assert firing.action == "shed_low_priority"


class _FlakySource:
    """Raises on its second collection, as a broken custom collector would."""

    def __init__(self) -> None:
        self.calls = 0

    def collect(self) -> Iterator[Metric]:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("collector broke")
        return iter(())


def test_runner_survives_a_failing_step_and_stops() -> None:
    source = _FlakySource()
    stepped = threading.Event()
    results: list[list[AlertState]] = []

    def on_step(states: list[AlertState]) -> None:
        results.append(states)
        if len(results) >= 2:
            stepped.set()

    runner = Evaluator(SPEC, source).run_every(0.01, on_step)
    assert stepped.wait(5), "the loop did not go on after a failing step"
    runner.stop()
    assert not runner.running
    assert source.calls >= 3
    calls = source.calls
    time.sleep(0.05)
    assert source.calls == calls  # stopped means stopped


def test_a_clock_that_did_not_move_samples_nothing() -> None:
    registry, depth = _queue_registry()
    evaluator = Evaluator(SPEC, registry, clock=lambda: 5.0)
    evaluator.step()
    assert evaluator.step() == [] and evaluator.footprint[0] == 1
