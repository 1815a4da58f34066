"""Raw series as the service exports them, from what each replica does per sample interval.

Both the promtool cases and the evaluator's agreement test replay these: every label
combination the service creates up front (priorities x outcomes, priorities x refusal reasons,
every bucket of each histogram, `_count`), whole-number counts, counters that reset when a
replica restarts, replicas that start and stop (a rollout replaces `instance`), and `instance`
and `job` as Prometheus adds them. What a replica does is a sequence of `Load` phases; how its
latencies spread over the buckets is a `Shape` (alerts/synthetic.py's two-bucket design shape,
or alerts/realistic.py's log-normal one).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Protocol

from alerts.exposition import (
    DURATION,
    HISTOGRAM_BUCKETS,
    INTER_TOKEN,
    LATENCY_BUCKETS,
    OUTCOMES,
    QUEUE_DEPTH,
    QUEUE_WAIT,
    REJECTIONS,
    REPLAYED_REFUSALS,
    REQUESTS,
    TTFT,
)
from alerts.samples import Labels
from alerts.spec_types import SERVICE_JOB

Series = dict[str, dict[Labels, list[float | None]]]  # name -> labels -> value per sample
GAPS_PER_REQUEST = 100  # inter-token gaps a completed request observes (its output length)
SPLIT = (("premium", 0.2), ("standard", 0.6), ("batch", 0.2))  # of every count, by priority
ALL_STANDARD = (("premium", 0.0), ("standard", 1.0), ("batch", 0.0))


class Shape(Protocol):
    """How one histogram family's observations spread over its buckets (the +Inf one last)."""

    def shares(self, family: str, bounds: tuple[float, ...], slowdown: float) -> list[float]: ...


@dataclass(frozen=True, kw_only=True)
class Load:
    """What one replica does during a phase: rates per second, shares, levels."""

    served_rps: float = 20.0  # completed + failed
    failed: float = 0.0  # share of served requests that fail
    cancelled_rps: float = 0.0
    refused_rps: tuple[tuple[str, float], ...] = ()  # by reason
    slowdown: tuple[tuple[str, float], ...] = ()  # histogram family -> every latency x this
    queue_depth: float = 0.0
    failures_at: tuple[int, ...] = ()  # single extra failures (s), among the served

    def factor(self, family: str) -> float:
        return dict(self.slowdown).get(family, 1.0)


def slower(factor: float, *families: str) -> tuple[tuple[str, float], ...]:
    """`Load.slowdown` for these families (every latency family when none is named)."""
    return tuple((f, factor) for f in (families or tuple(HISTOGRAM_BUCKETS)))


@dataclass(frozen=True, kw_only=True)
class Replica:
    """One scrape target: `instance`, its phases (start second, load), lifetime and restarts."""

    instance: str
    phases: tuple[tuple[int, Load], ...]
    start_s: int = 0
    end_s: int | None = None  # last sample; the next scrape finds it gone (a stale marker)
    restarts_at: tuple[int, ...] = ()  # counters start again from zero at these samples
    model: str = "m1"

    def load_at(self, t: int) -> Load:
        return [load for start, load in self.phases if start <= t][-1]

    def alive(self, t: int) -> bool:
        return self.start_s <= t and (self.end_s is None or t <= self.end_s)


@dataclass(frozen=True, kw_only=True)
class Traffic:
    """Replicas sampled every `step_s` from 0 to `duration_s`, with the families to export."""

    replicas: tuple[Replica, ...]
    duration_s: int
    shape: Shape
    step_s: int = 15
    families: tuple[str, ...] = (TTFT, QUEUE_WAIT, DURATION, INTER_TOKEN)
    split: tuple[tuple[str, float], ...] = SPLIT
    gauges: bool = True
    layouts: tuple[tuple[str, tuple[float, ...]], ...] = ()  # bucket bounds other than today's

    @property
    def times(self) -> range:
        return range(0, self.duration_s + 1, self.step_s)

    def bounds(self, family: str) -> tuple[float, ...]:
        """The family's buckets (a histogram the service does not export yet: the latency
        layout)."""
        return dict(self.layouts).get(family, HISTOGRAM_BUCKETS.get(family, LATENCY_BUCKETS))


def whole(n: int, shares: Sequence[float]) -> list[int]:
    """`n` split by `shares` into whole numbers that add up to `n` (largest remainder)."""
    total = sum(shares)
    exact = [n * s / total for s in shares] if total else [0.0] * len(shares)
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


@cache
def _le(bound: float) -> str:
    """prometheus_client's text for a bucket bound: 1.0, 0.0056, +Inf."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _labels(replica: Replica, priority: str, *extra: tuple[str, str]) -> Labels:
    return _sorted_labels(replica.instance, replica.model, priority, extra)


@cache
def _sorted_labels(instance: str, model: str, priority: str, extra: Labels) -> Labels:
    base = (("instance", instance), ("job", SERVICE_JOB), ("model", model))
    return tuple(sorted((*base, ("priority", priority), *extra)))


def _keys(traffic: Traffic, replica: Replica) -> list[tuple[str, Labels]]:
    """Every series of one replica, in the order `_amounts` fills them."""
    keys = []
    for priority, _ in traffic.split:
        keys += [(REJECTIONS, _labels(replica, priority, ("reason", r))) for r in REPLAYED_REFUSALS]
        keys += [(REQUESTS, _labels(replica, priority, ("outcome", o))) for o in OUTCOMES]
        for family in traffic.families:
            keys += [
                (f"{family}_bucket", _labels(replica, priority, ("le", _le(bound))))
                for bound in (*traffic.bounds(family), math.inf)
            ]
            keys.append((f"{family}_count", _labels(replica, priority)))
    return keys


def _amounts(traffic: Traffic, load: Load, failures: int) -> list[float]:
    """What a replica finishes in one sample interval under `load`, in `_keys` order;
    `failures` single failures among the served on top of the load's share."""
    step = traffic.step_s
    out: list[float] = []
    shares = [share for _, share in traffic.split]
    served_by = whole(round(load.served_rps * step), shares)
    cancelled_by = whole(round(load.cancelled_rps * step), shares)
    refused = {reason: whole(round(rps * step), shares) for reason, rps in load.refused_rps}
    served_total = sum(served_by)
    failed_by = whole(min(served_total, round(served_total * load.failed) + failures), served_by)
    for i in range(len(traffic.split)):
        served, cancelled, failed = served_by[i], cancelled_by[i], failed_by[i]
        by_reason = [refused[r][i] if r in refused else 0 for r in REPLAYED_REFUSALS]
        outcomes = {
            "completed": served - failed,
            "failed": failed,
            "cancelled": cancelled,
            "rejected": sum(by_reason),
        }
        out += by_reason
        out += [outcomes[o] for o in OUTCOMES]
        observed = {
            TTFT: served + cancelled,
            QUEUE_WAIT: served + cancelled,
            DURATION: served - failed,
            INTER_TOKEN: (served - failed) * GAPS_PER_REQUEST,
        }
        for family in traffic.families:
            observed.setdefault(family, served + cancelled)  # a histogram yet to be exported
            shares_by_bucket = traffic.shape.shares(
                family, traffic.bounds(family), load.factor(family)
            )
            cumulative = 0
            for count in whole(observed[family], shares_by_bucket):
                cumulative += count
                out.append(cumulative)
            out.append(observed[family])
    return out


def build_series(traffic: Traffic) -> Series:
    """Every sample of every replica; None where a replica does not exist."""
    times = list(traffic.times)
    series: Series = {}
    cache: dict[tuple[Load, int], list[float]] = {}
    for replica in traffic.replicas:
        keys = _keys(traffic, replica)  # every series, created up front at 0
        zero = [0.0] * len(keys)
        totals = zero
        columns: list[list[float] | None] = []
        depths: list[list[float] | None] = []
        starts = [start for start, _ in replica.phases]
        for t in times:
            if not replica.alive(t):
                columns.append(None)
                depths.append(None)
                continue
            # The sample at t holds what the interval (t - step, t] did: the load in force at
            # its start, so a phase starting at s changes the samples after s.
            at = max(t - traffic.step_s, replica.start_s)
            load = replica.phases[bisect_right(starts, at) - 1][1]
            if t in replica.restarts_at:
                totals = zero
            if t > replica.start_s:
                failures = sum(1 for f in load.failures_at if t - traffic.step_s < f <= t)
                if (load, failures) not in cache:
                    cache[(load, failures)] = _amounts(traffic, load, failures)
                totals = [a + b for a, b in zip(totals, cache[(load, failures)], strict=True)]
            columns.append(totals)
            depths.append(
                [float(d) for d in whole(round(load.queue_depth), [s for _, s in traffic.split])]
            )
        for i, (name, labels) in enumerate(keys):
            series.setdefault(name, {})[labels] = [None if c is None else c[i] for c in columns]
        if traffic.gauges:
            for j, (priority, _) in enumerate(traffic.split):
                series.setdefault(QUEUE_DEPTH, {})[_labels(replica, priority)] = [
                    None if d is None else d[j] for d in depths
                ]
    return series
