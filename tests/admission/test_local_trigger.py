"""The local trigger: the spec's rules evaluated on the service's own registry, on injected
clocks, move the level with no Prometheus or Alertmanager anywhere; and the seeds' GPU policy,
read from the spec's guard, follows KV-cache saturation on a host without a GPU."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Gauge

from alerts.spec import SPEC
from inference.admission.controller import ALERTMANAGER, LOCAL, Controller, Demand
from inference.admission.guards import GPU_GUARD, KV_GUARD, guards_from_spec
from inference.admission.levels import DEFAULT_LADDER
from inference.admission.local_trigger import LocalTrigger
from inference.backend import RequestTimes
from inference.telemetry.metrics import ServiceMetrics
from tests.admission.doubles import FakeClock


def _setup(
    registry: CollectorRegistry, dwell: float = 5.0
) -> tuple[Controller, LocalTrigger, FakeClock, FakeClock]:
    clock, wall = FakeClock(), FakeClock(1.8e9)
    controller = Controller(DEFAULT_LADDER, dwell_s=dwell, cooldown_s=60, clock=clock)
    local = LocalTrigger(controller, SPEC, registry, clock=clock, wall=wall)
    return controller, local, clock, wall


def _second(clock: FakeClock, wall: FakeClock) -> None:
    clock.advance(1)
    wall.advance(1)


def test_slow_first_tokens_move_the_level_with_no_prometheus_at_all() -> None:
    registry = CollectorRegistry()
    metrics = ServiceMetrics(
        registry, "m1", version="t", backend="t", device="cpu", concurrency_limit=0
    )
    controller, local, clock, wall = _setup(registry)
    changes = []
    controller.add_listener(changes.append)

    def traffic(ttft: float) -> None:
        for _ in range(4):  # 4 requests a second
            arrival = wall.now - ttft - 0.5
            times = RequestTimes(arrival, first_scheduled=arrival, first_token=arrival + ttft)
            times.finished = arrival + ttft + 0.5
            metrics.record_finished("standard", "completed", times, 10, 10, None)

    for _ in range(40):  # healthy: 50 ms
        _second(clock, wall)
        traffic(0.05)
        assert local.step() == []
    fired_at = None
    for second in range(60):  # 3 s first tokens: above the 2 s cold-start threshold
        _second(clock, wall)
        traffic(3.0)
        if local.step() and fired_at is None:
            fired_at = second
    assert fired_at is not None and fired_at < 30
    assert controller.level == 2  # shed_low_priority: batch first, then standard
    assert [c.trigger for c in changes] == [LOCAL, LOCAL]
    assert "InferwatchTimeToFirstTokenAboveBaseline" in changes[0].reason
    assert "cold_start" in changes[0].reason


def _gauges(registry: CollectorRegistry) -> tuple[Gauge, Gauge]:
    gpu = Gauge("inferwatch_gpu_utilization_ratio", "GPU busy", ["gpu", "uuid"], registry=registry)
    kv = Gauge("inferwatch_kv_cache_usage_ratio", "KV used", ["model"], registry=registry)
    return gpu, kv


def test_the_guards_are_read_from_the_spec() -> None:
    guards = {g.alert: g for g in guards_from_spec(SPEC)}
    gpu = guards[GPU_GUARD]
    spec_gpu = next(a for a in SPEC.guards if a.name == GPU_GUARD)
    assert gpu.action == dict(spec_gpu.labels)["action"] == "shed_low_priority"
    assert gpu.for_s == spec_gpu.for_s == 60 and gpu.condition.threshold == 0.9
    assert gpu.condition.metric == "inferwatch_gpu_utilization_ratio"
    assert gpu.fallback is not None and gpu.fallback.metric == "inferwatch_kv_cache_usage_ratio"
    assert guards[KV_GUARD].action == "cap_tokens"


def test_gpu_above_90_percent_for_60_s_sheds_low_priority_work() -> None:
    registry = CollectorRegistry()
    gpu, _ = _gauges(registry)
    gpu.labels("0", "GPU-x").set(0.95)
    controller, local, clock, wall = _setup(registry, dwell=0)
    for _ in range(60):  # seen above 90% first at the first step: held 59 s at the 60th
        _second(clock, wall)
        assert local.step() == []
    _second(clock, wall)  # held 60 s
    demands = local.step()
    assert [(d.source, d.action) for d in demands] == [(GPU_GUARD, "shed_low_priority")]
    for _ in range(3):
        _second(clock, wall)
        local.step()
    assert controller.level == 2
    gpu.labels("0", "GPU-x").set(0.5)  # below again: the hold starts over
    _second(clock, wall)
    assert local.step() == []


def test_without_a_gpu_the_same_policy_follows_kv_cache_saturation() -> None:
    registry = CollectorRegistry()
    _, kv = _gauges(registry)  # no GPU series at all, as on a CPU host
    kv.labels("m1").set(0.95)
    _, local, clock, wall = _setup(registry)
    for _ in range(61):
        _second(clock, wall)
        demands = local.step()
    assert sorted((d.source, d.action) for d in demands) == [
        (GPU_GUARD, "shed_low_priority"),
        (KV_GUARD, "cap_tokens"),
    ]
    assert "inferwatch_kv_cache_usage_ratio 0.95 > 0.9 for 60 s" in demands[0].detail


def test_a_failing_step_keeps_the_other_triggers_going() -> None:
    class Broken:
        def collect(self) -> list[object]:
            raise RuntimeError("scrape failed")

    clock = FakeClock()
    controller = Controller(DEFAULT_LADDER, dwell_s=0, cooldown_s=60, clock=clock)
    others = [(ALERTMANAGER, lambda: [Demand(ALERTMANAGER, "cap_tokens", "X")])]
    local = LocalTrigger(controller, SPEC, Broken(), clock=clock, others=others)
    with pytest.raises(RuntimeError, match="scrape failed"):  # the loop logs it and goes on
        local.step()
    assert controller.level == 1
