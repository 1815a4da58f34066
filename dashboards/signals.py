"""What the dashboards take from the alert spec: recorded series, SLIs, thresholds, SLO windows.

A panel that shows what an alert watches reads the series the rules record (so the graph and
the page cannot disagree), and its threshold is the alert's own number, read from the spec here
rather than typed again. Where the spec has no recorded series for something, the panel builds
its query with the spec's SLI classes over `$__rate_interval`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from alerts.baseline import BaselineRule, baseline_rules, traffic_record
from alerts.sli import SLI, CounterRatio, GaugeSum, HistogramQuantile
from alerts.spec import SPEC, BaselineSignal, Spec
from dashboards.grafana import OK, Step, above
from dashboards.promql import metric_names
from dashboards.series import family

RATE = "$__rate_interval"
_QUANTILE = re.compile(r"histogram_quantile\(\s*([0-9.]+)\s*,")
# The first `> number` of a guard's expression is its threshold (`x > 0.9`, `sum(...) > 100`).
_THRESHOLD = re.compile(r">\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)(?!\s*\*)")


@dataclass(frozen=True)
class LatencyGuard:
    """A static alert on a quantile of a latency histogram (p99 latency > N s)."""

    alert: str
    quantile: float
    threshold: float


@dataclass(frozen=True)
class Signals:
    """The spec, read the way the dashboards need it."""

    spec: Spec = SPEC

    @property
    def rules(self) -> tuple[BaselineRule, ...]:
        return baseline_rules(self.spec, self.spec.prometheus)

    @property
    def traffic(self) -> str:
        """Requests/s per replica and model: the series every SLI is gated on."""
        return traffic_record(self.spec, self.spec.prometheus)

    def _rule(self, matches: Callable[[SLI], bool]) -> BaselineRule | None:
        return next((rule for rule in self.rules if matches(rule.signal.sli)), None)

    def _quantile_rule(self, metric: str) -> tuple[BaselineRule, HistogramQuantile] | None:
        rule = self._rule(lambda sli: isinstance(sli, HistogramQuantile) and sli.metric == metric)
        if rule is None or not isinstance(rule.signal.sli, HistogramQuantile):
            return None
        return rule, rule.signal.sli

    def quantile(self, metric: str, default: float = 0.95) -> float:
        """The quantile the spec watches a latency histogram at (p99 for durations, ...)."""
        found = self._quantile_rule(metric)
        return found[1].q if found else default

    def recorded_quantile(self, metric: str, by: tuple[str, ...]) -> tuple[str, str]:
        """(title, query) of the spec's quantile of a histogram: the recorded SLI where the spec
        has one, else the same SLI over `$__rate_interval`."""
        found = self._quantile_rule(metric)
        if found is not None:
            return found[0].signal.what, found[0].sli_record
        q = self.quantile(metric)
        return f"p{q * 100:g}", HistogramQuantile(metric=metric, q=q, by=by).promql(RATE)

    def recorded_ratio(self, metric: str, label: str, value: str) -> tuple[str, str]:
        """(title, query) of the share of `metric` whose `label` is `value`."""
        rule = self._rule(
            lambda sli: (
                isinstance(sli, CounterRatio)
                and (sli.metric, sli.label, sli.value) == (metric, label, value)
            )
        )
        if rule is not None:
            return rule.signal.what, rule.sli_record
        ratio = CounterRatio(metric=metric, label=label, value=value, op="ratio", by=())
        return f"{label}={value} ratio", ratio.promql(RATE)

    def recorded_sum(self, metric: str) -> tuple[str, str]:
        """(title, query) of a gauge summed per replica and model."""
        rule = self._rule(lambda sli: isinstance(sli, GaugeSum) and sli.metric == metric)
        if rule is not None:
            return rule.signal.what, rule.sli_record
        return metric, GaugeSum(metric=metric, by=("instance", "model")).promql(RATE)

    def threshold(self, alert: str, *, resource: str | None = None) -> float | None:
        """A static guard's threshold, from its expression in the spec; None when the spec
        has no such guard (any more)."""
        for guard in self.spec.guards:
            if guard.name == alert and (resource is None or ("resource", resource) in guard.labels):
                match = _THRESHOLD.search(guard.expr)
                if match is None:
                    raise ValueError(f"{alert}: no `> number` in {guard.expr!r}")
                return float(match.group(1))
        return None

    def steps(self, alert: str, *, resource: str | None = None) -> tuple[Step, ...]:
        """Red from the guard's threshold up; no threshold without the guard."""
        value = self.threshold(alert, resource=resource)
        return OK if value is None else above(value)

    def latency_guard(self, metric: str) -> LatencyGuard | None:
        """The guard on a quantile of this latency histogram, if the spec has one."""
        for guard in self.spec.guards:
            quantile = _QUANTILE.search(guard.expr)
            if quantile is None or metric not in {family(n) for n in metric_names(guard.expr)}:
                continue
            value = self.threshold(guard.name)
            if value is not None:
                return LatencyGuard(guard.name, float(quantile.group(1)), value)
        return None

    def alert_values(self) -> frozenset[float]:
        """Every number the spec alerts on: guard thresholds, cold-start thresholds, burn rates
        and SLO objectives; the only values a panel's threshold may take."""
        values: set[float] = set()
        for guard in self.spec.guards:
            values.update(float(m) for m in _THRESHOLD.findall(guard.expr))
        values.update(s.cold_start_threshold for s in self.spec.baselines)
        values.update(b.burn_rate for b in self.spec.burn_windows)
        values.update(s.objective for s in self.spec.slos)
        return frozenset(values)

    @property
    def slo_window_s(self) -> float:
        """The longest burn window: the period attainment and budget left are shown over."""
        return max(b.long_s for b in self.spec.burn_windows)

    def slo_windows(self) -> list[float]:
        return sorted({w for b in self.spec.burn_windows for w in (b.long_s, b.short_s)})


def baseline_unit(signal: BaselineSignal) -> str:
    """The Grafana unit of a signal: seconds, a ratio, or a count."""
    if signal.unit == "s":
        return "s"
    return "percentunit" if isinstance(signal.sli, CounterRatio) else "short"
