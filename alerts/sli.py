"""Service level indicators, each written once as PromQL and once as the same computation in Python.

Keeping both halves of an SLI in one small class is what lets the promtool/evaluator agreement
test mean something: the expression and its in-process twin are reviewed side by side. Each SLI
also says which events it is made of (`events_promql`: histogram observations, or a ratio's bad
events), so a rule can refuse to judge a window that holds too few of them, and how its fleet
(`fleet`: the same SLI over every replica of a job and model) is computed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal, Protocol

from alerts.promql_math import bucket_quantile, extrapolated_rate, parse_le
from alerts.samples import Labels, SampleBuffer

GroupKey = tuple[tuple[str, str], ...]  # the `by` labels of one output series
# (label, values): the series whose label is one of the values; None: every series.
Match = tuple[str, tuple[str, ...]] | None
# Where a minimum count of the SLI's events applies: to the SLI itself (a p99 of 30 requests is
# their maximum, not a p99) or only to its alerts (a ratio of 0 failures is a fine baseline
# sample, but one failure is no evidence of a breach).
EventsGate = Literal["sli", "alert"] | None


def group_key(labels: Labels, by: tuple[str, ...]) -> GroupKey:
    values = dict(labels)
    return tuple((name, values[name]) for name in sorted(by) if values.get(name))


def selector(metric: str, match: Match) -> str:
    """`metric{label="v"}` or `metric{label=~"a|b"}` (Prometheus anchors the regex)."""
    if match is None:
        return metric
    label, values = match
    op = "=" if len(values) == 1 else "=~"
    return f'{metric}{{{label}{op}"{"|".join(values)}"}}'


def _matches(labels: Labels, match: Match) -> bool:
    return match is None or dict(labels).get(match[0]) in match[1]


def _sum_by(values: dict[Labels, float], by: tuple[str, ...]) -> dict[GroupKey, float]:
    """`sum by (...)`: accumulates in series order, as Prometheus 2.42 does (no Kahan sum)."""
    out: dict[GroupKey, float] = {}
    for labels, value in values.items():
        key = group_key(labels, by)
        out[key] = out[key] + value if key in out else value
    return out


def _rates(
    buffer: SampleBuffer,
    name: str,
    t_ms: int,
    window_ms: int,
    match: Match = None,
    *,
    is_rate: bool = True,
) -> dict[Labels, float]:
    """rate() (or increase()) of every series of `name` that `match` selects."""
    rates = {}
    for labels, points in buffer.range(name, t_ms - window_ms, t_ms).items():
        if not _matches(labels, match):
            continue
        rate = extrapolated_rate(points, t_ms - window_ms, t_ms, is_rate=is_rate)
        if rate is not None:
            rates[labels] = rate
    return rates


def _by(by: tuple[str, ...]) -> str:
    return ", ".join(by)


class SLI(Protocol):
    by: tuple[str, ...]
    level: str  # the first part of its record names: `model` per replica, `job_model` per fleet
    events_gate: EventsGate

    def record_name(self, window: str) -> str: ...

    def promql(self, window: str) -> str: ...

    def events_promql(self, window: str) -> str | None: ...

    def sample_names(self) -> frozenset[str]: ...

    def compute(self, buffer: SampleBuffer, t_ms: int, window_ms: int) -> dict[GroupKey, float]: ...

    def compute_events(
        self, buffer: SampleBuffer, t_ms: int, window_ms: int
    ) -> dict[GroupKey, float]: ...

    def fleet(self, by: tuple[str, ...], level: str) -> SLI: ...


class _WithoutEvents:
    """An SLI of no countable events (traffic, a gauge): no minimum applies."""

    def events_promql(self, window: str) -> None:
        return None

    def compute_events(
        self, buffer: SampleBuffer, t_ms: int, window_ms: int
    ) -> dict[GroupKey, float]:
        return {}


@dataclass(frozen=True, kw_only=True)
class HistogramQuantile:
    """histogram_quantile(q) of a classic histogram's rate, summed over everything but `by`.

    Its events are the histogram's observations (`_count`): the population it measures is
    whatever the histogram holds, whichever outcomes observe it.
    """

    metric: str
    q: float
    by: tuple[str, ...]
    level: str = "model"
    events_gate: EventsGate = "sli"

    def record_name(self, window: str) -> str:
        return f"{self.level}:{self.metric}:p{self.q * 100:g}_rate{window}"

    def promql(self, window: str) -> str:
        return (
            f"histogram_quantile({self.q}, sum by ({_by(self.by)}, le) "
            f"(rate({self.metric}_bucket[{window}])))"
        )

    def events_promql(self, window: str) -> str:
        return f"sum by ({_by(self.by)}) (increase({self.metric}_count[{window}]))"

    def sample_names(self) -> frozenset[str]:
        return frozenset({f"{self.metric}_bucket", f"{self.metric}_count"})

    def compute(self, buffer: SampleBuffer, t_ms: int, window_ms: int) -> dict[GroupKey, float]:
        rates = _rates(buffer, f"{self.metric}_bucket", t_ms, window_ms)
        per_le = _sum_by(rates, (*self.by, "le"))
        buckets: dict[GroupKey, list[tuple[float, float]]] = {}
        for key, value in per_le.items():
            labels = dict(key)
            bound = parse_le(labels.pop("le", ""))
            if bound is not None:
                buckets.setdefault(tuple(labels.items()), []).append((bound, value))
        return {key: bucket_quantile(self.q, pairs) for key, pairs in buckets.items()}

    def compute_events(
        self, buffer: SampleBuffer, t_ms: int, window_ms: int
    ) -> dict[GroupKey, float]:
        counts = _rates(buffer, f"{self.metric}_count", t_ms, window_ms, is_rate=False)
        return _sum_by(counts, self.by)

    def fleet(self, by: tuple[str, ...], level: str) -> HistogramQuantile:
        """The pooled histogram of the fleet: its quantile is comparable to one replica's."""
        return dataclasses.replace(self, by=by, level=level)


@dataclass(frozen=True, kw_only=True)
class CounterRatio:
    """Share of a counter's rate whose `label` is `value`, among the series whose `label` is
    one of `among` (every series when empty); 0 (not absent) when none are bad. Its events are
    the bad ones."""

    metric: str
    label: str
    value: str
    op: str
    by: tuple[str, ...]
    among: tuple[str, ...] = ()
    level: str = "model"
    events_gate: EventsGate = "alert"

    @property
    def _population(self) -> Match:
        return (self.label, self.among) if self.among else None

    @property
    def _bad(self) -> Match:
        return (self.label, (self.value,))

    def record_name(self, window: str) -> str:
        return f"{self.level}:{self.metric.removesuffix('_total')}:{self.op}_rate{window}"

    def promql(self, window: str) -> str:
        by = _by(self.by)
        bad = f"rate({selector(self.metric, self._bad)}[{window}])"
        every = f"rate({selector(self.metric, self._population)}[{window}])"
        return f"sum by ({by}) ({bad} or 0 * {every}) / sum by ({by}) ({every})"

    def events_promql(self, window: str) -> str:
        return f"sum by ({_by(self.by)}) (increase({selector(self.metric, self._bad)}[{window}]))"

    def sample_names(self) -> frozenset[str]:
        return frozenset({self.metric})

    def compute(self, buffer: SampleBuffer, t_ms: int, window_ms: int) -> dict[GroupKey, float]:
        every = _rates(buffer, self.metric, t_ms, window_ms, self._population)
        bad = _rates(buffer, self.metric, t_ms, window_ms, self._bad)
        # `or 0 * rate(...)`: the good series follow the bad ones, each adding a zero.
        numerator = _sum_by(
            {**bad, **{lbl: 0 * v for lbl, v in every.items() if lbl not in bad}}, self.by
        )
        denominator = _sum_by(every, self.by)
        return {
            key: _divide(numerator[key], denominator[key])
            for key in denominator
            if key in numerator
        }

    def compute_events(
        self, buffer: SampleBuffer, t_ms: int, window_ms: int
    ) -> dict[GroupKey, float]:
        bad = _rates(buffer, self.metric, t_ms, window_ms, self._bad, is_rate=False)
        return _sum_by(bad, self.by)

    def fleet(self, by: tuple[str, ...], level: str) -> CounterRatio:
        """The ratio over the fleet's pooled counts."""
        return dataclasses.replace(self, by=by, level=level)


@dataclass(frozen=True, kw_only=True)
class CounterRate(_WithoutEvents):
    """Per-second rate of a counter's series that `match` selects, summed by `by`: traffic."""

    metric: str
    by: tuple[str, ...]
    match: Match = None
    name: str = ""  # an operation prefix: model:inferwatch_requests:served_rate5m
    level: str = "model"
    events_gate: EventsGate = None

    def record_name(self, window: str) -> str:
        op = f"{self.name}_rate" if self.name else "rate"
        return f"{self.level}:{self.metric.removesuffix('_total')}:{op}{window}"

    def promql(self, window: str) -> str:
        return f"sum by ({_by(self.by)}) (rate({selector(self.metric, self.match)}[{window}]))"

    def sample_names(self) -> frozenset[str]:
        return frozenset({self.metric})

    def compute(self, buffer: SampleBuffer, t_ms: int, window_ms: int) -> dict[GroupKey, float]:
        return _sum_by(_rates(buffer, self.metric, t_ms, window_ms, self.match), self.by)

    def fleet(self, by: tuple[str, ...], level: str) -> CounterRate:
        return dataclasses.replace(self, by=by, level=level)


@dataclass(frozen=True, kw_only=True)
class GaugeSum(_WithoutEvents):
    """A live gauge summed by `by` (the window does not apply: the newest sample counts)."""

    metric: str
    by: tuple[str, ...]
    level: str = "model"
    events_gate: EventsGate = None

    def record_name(self, window: str) -> str:
        return f"{self.level}:{self.metric}:sum"

    def promql(self, window: str) -> str:
        return f"sum by ({_by(self.by)}) ({self.metric})"

    def sample_names(self) -> frozenset[str]:
        return frozenset({self.metric})

    def compute(self, buffer: SampleBuffer, t_ms: int, window_ms: int) -> dict[GroupKey, float]:
        return _sum_by(buffer.latest(self.metric), self.by)

    def fleet(self, by: tuple[str, ...], level: str) -> GaugeSum:
        """A fleet's sum grows with its replicas: the comparable value is the mean of theirs."""
        return GaugeFleetMean(metric=self.metric, by=by, per=self.by, level=level)


@dataclass(frozen=True, kw_only=True)
class GaugeFleetMean(GaugeSum):
    """The mean over `per` groups (replicas) of a gauge's sum, by `by` (the fleet)."""

    per: tuple[str, ...]
    level: str = "job_model"

    def record_name(self, window: str) -> str:
        return f"{self.level}:{self.metric}:sum_avg"

    def promql(self, window: str) -> str:
        by = _by(self.by)
        return (
            f"sum by ({by}) ({self.metric}) / count by ({by}) "
            f"(sum by ({_by(self.per)}) ({self.metric}))"
        )

    def compute(self, buffer: SampleBuffer, t_ms: int, window_ms: int) -> dict[GroupKey, float]:
        latest = buffer.latest(self.metric)
        total = _sum_by(latest, self.by)
        groups: dict[GroupKey, set[GroupKey]] = {}
        for labels in latest:
            groups.setdefault(group_key(labels, self.by), set()).add(group_key(labels, self.per))
        return {key: _divide(value, float(len(groups[key]))) for key, value in total.items()}

    def fleet(self, by: tuple[str, ...], level: str) -> GaugeSum:
        return dataclasses.replace(self, by=by, level=level)


def _divide(a: float, b: float) -> float:
    """Go's float division: x/0 is ±Inf or NaN, never an exception."""
    if b == 0:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
    return a / b
