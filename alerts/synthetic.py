"""The design cases of a baseline signal as raw series: steps, 1.4x, noise, low traffic, cold start.

A scenario says what the SLI does relative to its steady value ("level"); alerts/raw_series.py
turns that into the service's raw samples (its buckets and label sets). Latencies take the
two-bucket design shape: every observation of a step lies in two adjacent buckets, mixed so
that the interpolated quantile is exactly `level x steady`, which is what lets the promtool
cases state from the rule design when the SLI crosses 1.5x. The same numbers feed promtool and
the in-process evaluator, so both judge identical samples.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from alerts.raw_series import ALL_STANDARD, Load, Replica, Series, Traffic, build_series
from alerts.sli import CounterRatio, GaugeSum, HistogramQuantile
from alerts.spec_types import BaselineSignal

STEP_S = 30  # sample spacing; equal to the Prometheus evaluation interval
TARGET = (("instance", "127.0.0.1:8000"), ("job", "inferwatch"), ("model", "m1"))
REQUESTS_PER_STEP = 1000  # 33 req/s, far above the minimum traffic
LOW_REQUESTS_PER_STEP = 2  # 0.067 req/s, below the minimum of 30 served requests in 5 m
STEADY_ERROR_RATIO = 0.03
STEADY_QUEUE_DEPTH = 20


@dataclass(frozen=True, kw_only=True)
class Phase:
    start_s: int
    level: float  # SLI as a multiple of its steady value
    requests: int = REQUESTS_PER_STEP  # finished requests per step
    noise: float = 0.0  # each step's level is drawn from level * (1 +- noise)


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    phases: tuple[Phase, ...]
    duration_s: int
    seed: int = 1

    def phase_at(self, t: int) -> Phase:
        return [p for p in self.phases if p.start_s <= t][-1]


@dataclass(frozen=True)
class TwoBucket:
    """The design shape: a q-quantile of exactly `value x slowdown` from two adjacent buckets."""

    value: float
    q: float

    def shares(self, family: str, bounds: tuple[float, ...], slowdown: float) -> list[float]:
        return bucket_shares(slowdown * self.value, self.q, bounds)


def bucket_shares(value: float, q: float, bounds: tuple[float, ...]) -> list[float]:
    """Share of observations per bucket (+Inf last) such that the interpolated q-quantile
    equals `value`.

    Two adjacent buckets suffice: with share a in the lower and 1 - a in the upper one, the
    quantile moves continuously across both as a goes from 1 to 0.
    """
    edges = (0.0, *bounds)
    k = next(i for i in range(len(bounds)) if value <= bounds[i])
    lo, hi = edges[k], edges[k + 1]
    shares = [0.0] * (len(bounds) + 1)
    if value <= lo + (hi - lo) * q and k > 0:  # mix bucket k-1 (share a) with bucket k
        r = (value - lo) / (hi - lo)
        a = (q - r) / (1 - r)
        shares[k - 1], shares[k] = a, 1 - a
    else:  # mix bucket k (share a) with bucket k+1
        a = min(1.0, q * (hi - lo) / (value - lo))
        shares[k], shares[k + 1] = a, 1 - a
    return shares


def steady_value(signal: BaselineSignal) -> float:
    sli = signal.sli
    if isinstance(sli, HistogramQuantile):  # a 3x step stays below the cold-start threshold
        return signal.cold_start_threshold / 4
    if isinstance(sli, CounterRatio):
        return STEADY_ERROR_RATIO
    return STEADY_QUEUE_DEPTH


def step_level(signal: BaselineSignal) -> float:
    """A step the SLI crosses 1.5x at the first evaluation after it (10% of a 5m window new)."""
    return 8.0 if isinstance(signal.sli, CounterRatio) else 3.0


def cold_level(signal: BaselineSignal) -> float:
    """Level at which the SLI is 1.6x the cold-start threshold."""
    return 1.6 * signal.cold_start_threshold / steady_value(signal)


def _low_traffic_level(signal: BaselineSignal) -> float:
    """Above the cold-start threshold even with 2 requests a step (1 of 2 failing for errors)."""
    if isinstance(signal.sli, CounterRatio):
        return 0.5 / STEADY_ERROR_RATIO
    return cold_level(signal)


def _load(signal: BaselineSignal, level: float, requests: int) -> Load:
    sli = signal.sli
    load = Load(served_rps=requests / STEP_S)
    if isinstance(sli, HistogramQuantile):
        return Load(served_rps=load.served_rps, slowdown=((sli.metric, level),))
    if isinstance(sli, CounterRatio):
        return Load(served_rps=load.served_rps, failed=min(1.0, level * STEADY_ERROR_RATIO))
    return Load(served_rps=load.served_rps, queue_depth=level * STEADY_QUEUE_DEPTH)


def traffic(signal: BaselineSignal, scenario: Scenario) -> Traffic:
    """The scenario as one replica's phases (a phase per step where the level is noisy)."""
    rng = random.Random(scenario.seed)
    phases = []
    for t in range(0, scenario.duration_s + 1, STEP_S):
        phase = scenario.phase_at(t)
        noise = rng.uniform(-phase.noise, phase.noise) if phase.noise else 0.0
        load = _load(signal, phase.level * (1 + noise), phase.requests)
        if not phases or phases[-1][1] != load:
            phases.append((t, load))
    sli = signal.sli
    histogram = isinstance(sli, HistogramQuantile)
    return Traffic(
        replicas=(Replica(instance=dict(TARGET)["instance"], phases=tuple(phases)),),
        duration_s=scenario.duration_s,
        shape=TwoBucket(steady_value(signal), sli.q if histogram else 0.5),
        step_s=STEP_S,
        families=(sli.metric,) if histogram else (),
        split=ALL_STANDARD,
        gauges=isinstance(sli, GaugeSum),
    )


def build(signal: BaselineSignal, scenario: Scenario) -> Series:
    """Raw samples at t = 0, STEP_S, ..., duration_s for `signal` under `scenario`."""
    return build_series(traffic(signal, scenario))


def scenarios(signal: BaselineSignal, step_at_s: int = 5400) -> dict[str, Scenario]:
    """The cases both promtool and the evaluator run; the step comes once a baseline exists."""
    after = step_at_s + 1200
    return {
        "steady": Scenario(name="steady", phases=(Phase(start_s=0, level=1.0),), duration_s=after),
        "step": Scenario(
            name="step",
            phases=(
                Phase(start_s=0, level=1.0),
                Phase(start_s=step_at_s, level=step_level(signal)),
            ),
            duration_s=after,
        ),
        "step_2x": Scenario(
            name="step_2x",
            phases=(Phase(start_s=0, level=1.0), Phase(start_s=step_at_s, level=2.0)),
            duration_s=after,
        ),
        "step_1_4x": Scenario(
            name="step_1_4x",
            phases=(Phase(start_s=0, level=1.0), Phase(start_s=step_at_s, level=1.4)),
            duration_s=after + 1800,
        ),
        "noise_30pct": Scenario(
            name="noise_30pct",
            phases=(Phase(start_s=0, level=1.0, noise=0.3),),
            duration_s=7 * 3600,
        ),
        "low_traffic": Scenario(
            name="low_traffic",
            phases=(
                Phase(start_s=0, level=_low_traffic_level(signal), requests=LOW_REQUESTS_PER_STEP),
            ),
            duration_s=7200,
        ),
        "cold_start": Scenario(
            name="cold_start", phases=(Phase(start_s=0, level=cold_level(signal)),), duration_s=900
        ),
    }
