"""Service level indicators, each written once as PromQL and once as the same computation in Python.

Keeping both halves of an SLI in one small class is what lets the promtool/evaluator agreement
test mean something: the expression and its in-process twin are reviewed side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from alerts.promql_math import bucket_quantile, extrapolated_rate, parse_le
from alerts.samples import Labels, SampleBuffer

GroupKey = tuple[tuple[str, str], ...]  # the `by` labels of one output series


def group_key(labels: Labels, by: tuple[str, ...]) -> GroupKey:
    values = dict(labels)
    return tuple((name, values[name]) for name in sorted(by) if values.get(name))


def _sum_by(values: dict[Labels, float], by: tuple[str, ...]) -> dict[GroupKey, float]:
    """`sum by (...)`: accumulates in series order, as Prometheus 2.42 does (no Kahan sum)."""
    out: dict[GroupKey, float] = {}
    for labels, value in values.items():
        key = group_key(labels, by)
        out[key] = out[key] + value if key in out else value
    return out


def _rates(buffer: SampleBuffer, name: str, t_ms: int, window_ms: int) -> dict[Labels, float]:
    rates = {}
    for labels, points in buffer.range(name, t_ms - window_ms, t_ms).items():
        rate = extrapolated_rate(points, t_ms - window_ms, t_ms)
        if rate is not None:
            rates[labels] = rate
    return rates


class SLI(Protocol):
    by: tuple[str, ...]

    def record_name(self, window: str) -> str: ...

    def promql(self, window: str) -> str: ...

    def sample_names(self) -> frozenset[str]: ...

    def compute(self, buffer: SampleBuffer, t_ms: int, window_ms: int) -> dict[GroupKey, float]: ...


@dataclass(frozen=True, kw_only=True)
class HistogramQuantile:
    """histogram_quantile(q) of a classic histogram's rate, summed over everything but `by`."""

    metric: str
    q: float
    by: tuple[str, ...]

    def record_name(self, window: str) -> str:
        return f"model:{self.metric}:p{self.q * 100:g}_rate{window}"

    def promql(self, window: str) -> str:
        by = ", ".join(self.by)
        return (
            f"histogram_quantile({self.q}, sum by ({by}, le) "
            f"(rate({self.metric}_bucket[{window}])))"
        )

    def sample_names(self) -> frozenset[str]:
        return frozenset({f"{self.metric}_bucket"})

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


@dataclass(frozen=True, kw_only=True)
class CounterRatio:
    """Share of a counter's rate whose `label` is `value`; 0 (not absent) when none are."""

    metric: str
    label: str
    value: str
    op: str
    by: tuple[str, ...]

    def record_name(self, window: str) -> str:
        return f"model:{self.metric.removesuffix('_total')}:{self.op}_rate{window}"

    def promql(self, window: str) -> str:
        by = ", ".join(self.by)
        bad = f'rate({self.metric}{{{self.label}="{self.value}"}}[{window}])'
        every = f"rate({self.metric}[{window}])"
        return f"sum by ({by}) ({bad} or 0 * {every}) / sum by ({by}) ({every})"

    def sample_names(self) -> frozenset[str]:
        return frozenset({self.metric})

    def compute(self, buffer: SampleBuffer, t_ms: int, window_ms: int) -> dict[GroupKey, float]:
        rates = _rates(buffer, self.metric, t_ms, window_ms)
        bad = {lbl: v for lbl, v in rates.items() if dict(lbl).get(self.label) == self.value}
        # `or 0 * rate(...)`: the good series follow the bad ones, each adding a zero.
        numerator = _sum_by(
            {**bad, **{lbl: 0 * v for lbl, v in rates.items() if lbl not in bad}}, self.by
        )
        denominator = _sum_by(rates, self.by)
        return {key: _divide(numerator[key], denominator[key]) for key in denominator}


@dataclass(frozen=True, kw_only=True)
class CounterRate:
    """Per-second rate of a counter, summed by `by`: the traffic every SLI is gated on."""

    metric: str
    by: tuple[str, ...]

    def record_name(self, window: str) -> str:
        return f"model:{self.metric.removesuffix('_total')}:rate{window}"

    def promql(self, window: str) -> str:
        return f"sum by ({', '.join(self.by)}) (rate({self.metric}[{window}]))"

    def sample_names(self) -> frozenset[str]:
        return frozenset({self.metric})

    def compute(self, buffer: SampleBuffer, t_ms: int, window_ms: int) -> dict[GroupKey, float]:
        return _sum_by(_rates(buffer, self.metric, t_ms, window_ms), self.by)


@dataclass(frozen=True, kw_only=True)
class GaugeSum:
    """A live gauge summed by `by` (the window does not apply: the newest sample counts)."""

    metric: str
    by: tuple[str, ...]

    def record_name(self, window: str) -> str:
        return f"model:{self.metric}:sum"

    def promql(self, window: str) -> str:
        return f"sum by ({', '.join(self.by)}) ({self.metric})"

    def sample_names(self) -> frozenset[str]:
        return frozenset({self.metric})

    def compute(self, buffer: SampleBuffer, t_ms: int, window_ms: int) -> dict[GroupKey, float]:
        return _sum_by(buffer.latest(self.metric), self.by)


def _divide(a: float, b: float) -> float:
    """Go's float division: x/0 is ±Inf or NaN, never an exception."""
    if b == 0:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
    return a / b
