"""Synthetic raw series (histogram buckets, counters, gauges) for a baseline signal's scenarios.

The same numbers feed promtool (as input_series) and the in-process evaluator (through a
prometheus_client collector), so both judge identical samples. A scenario says what the SLI does
relative to its steady value ("level"); this module turns that into raw exporter samples.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from alerts.samples import Labels
from alerts.sli import CounterRatio, GaugeSum, HistogramQuantile
from alerts.spec import REQUESTS, BaselineSignal

STEP_S = 30  # sample spacing; equal to the Prometheus evaluation interval
BUCKETS = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, math.inf)
TARGET = (("instance", "127.0.0.1:8000"), ("job", "inferwatch"), ("model", "m1"))
PRIORITY = ("priority", "standard")
REQUESTS_PER_STEP = 1000  # 33 req/s, far above the minimum traffic
LOW_REQUESTS_PER_STEP = 2  # 0.067 req/s, below the minimum of 0.1 req/s
STEADY_BUCKET = 3  # steady latencies lie in (0.4, 0.8]
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


Series = dict[str, dict[Labels, list[float]]]  # sample name -> labels -> value per step


def _labels(*extra: tuple[str, str]) -> Labels:
    return tuple(sorted((*TARGET, PRIORITY, *extra)))


def steady_value(signal: BaselineSignal) -> float:
    sli = signal.sli
    if isinstance(sli, HistogramQuantile):
        lo, hi = BUCKETS[STEADY_BUCKET - 1], BUCKETS[STEADY_BUCKET]
        return lo + (hi - lo) * sli.q
    if isinstance(sli, CounterRatio):
        return STEADY_ERROR_RATIO
    return STEADY_QUEUE_DEPTH


def step_level(signal: BaselineSignal) -> float:
    """A step the SLI crosses 1.5x at the first evaluation after it (10% of a 5m window new)."""
    return 8.0 if isinstance(signal.sli, CounterRatio) else 2.0


def cold_level(signal: BaselineSignal) -> float:
    """Level at which the SLI is 1.6x the cold-start threshold."""
    return 1.6 * signal.cold_start_threshold / steady_value(signal)


def _low_traffic_level(signal: BaselineSignal) -> float:
    """Above the cold-start threshold even with 2 requests a step (1 of 2 failing for errors)."""
    if isinstance(signal.sli, CounterRatio):
        return 0.5 / STEADY_ERROR_RATIO
    return cold_level(signal)


def bucket_shares(value: float, q: float) -> list[float]:
    """Share of observations per bucket such that the interpolated q-quantile equals `value`.

    Two adjacent buckets suffice: with share a in the lower and 1 - a in the upper one, the
    quantile moves continuously across both as a goes from 1 to 0.
    """
    bounds = (0.0, *BUCKETS)
    k = next(i for i in range(len(BUCKETS)) if value <= BUCKETS[i])
    lo, hi = bounds[k], bounds[k + 1]
    shares = [0.0] * len(BUCKETS)
    if value <= lo + (hi - lo) * q and k > 0:  # mix bucket k-1 (share a) with bucket k
        r = (value - lo) / (hi - lo)
        a = (q - r) / (1 - r)
        shares[k - 1], shares[k] = a, 1 - a
    else:  # mix bucket k (share a) with bucket k+1
        a = min(1.0, q * (hi - lo) / (value - lo))
        shares[k], shares[k + 1] = a, 1 - a
    return shares


def _levels(scenario: Scenario) -> list[tuple[float, int]]:
    """(level, requests) of the step ending at each sample; sample 0 has none."""
    rng = random.Random(scenario.seed)
    out = []
    for t in range(0, scenario.duration_s + 1, STEP_S):
        phase = scenario.phase_at(t - STEP_S) if t else scenario.phases[0]
        noise = rng.uniform(-phase.noise, phase.noise) if phase.noise else 0.0
        out.append((phase.level * (1 + noise), phase.requests))
    return out


def _cumulate(steps: list[list[float]]) -> list[list[float]]:
    totals = [0.0] * len(steps[0])
    out = []
    for i, increments in enumerate(steps):
        if i:
            totals = [total + inc for total, inc in zip(totals, increments, strict=True)]
        out.append(list(totals))
    return out


def build(signal: BaselineSignal, scenario: Scenario) -> Series:
    """Raw samples at t = 0, STEP_S, ..., duration_s for `signal` under `scenario`."""
    levels = _levels(scenario)
    steady = steady_value(signal)
    sli = signal.sli
    series: Series = {}
    if isinstance(sli, HistogramQuantile):
        steps = []
        for level, n in levels:
            shares = bucket_shares(level * steady, sli.q)
            counts = [float(round(n * s)) for s in shares[:-1]]
            counts.append(n - sum(counts))
            steps.append([sum(counts[: i + 1]) for i in range(len(counts))])  # cumulative `le`
        columns = list(zip(*_cumulate(steps), strict=True))
        series[f"{sli.metric}_bucket"] = {
            _labels(("le", _le(b))): list(col) for b, col in zip(BUCKETS, columns, strict=True)
        }
        series[REQUESTS] = {_labels(("outcome", "completed")): list(columns[-1])}
    elif isinstance(sli, CounterRatio):
        steps = []
        for level, n in levels:
            failed = float(round(n * min(1.0, level * steady)))
            steps.append([n - failed, failed])
        completed, failed = zip(*_cumulate(steps), strict=True)
        series[REQUESTS] = {
            _labels(("outcome", "completed")): list(completed),
            _labels(("outcome", sli.value)): list(failed),
        }
    elif isinstance(sli, GaugeSum):
        totals = _cumulate([[float(n)] for _, n in levels])
        series[REQUESTS] = {_labels(("outcome", "completed")): [row[0] for row in totals]}
        series[sli.metric] = {_labels(): [float(round(level * steady)) for level, _ in levels]}
    else:
        raise TypeError(f"no synthetic series for {type(sli).__name__}")
    return series


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


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
