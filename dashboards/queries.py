"""Queries as the panels use them: every selector scoped to the dashboard's variables, rates
over `$__rate_interval`, quantiles and rates built with the alert spec's own SLI classes."""

from __future__ import annotations

from alerts.sli import CounterRate, HistogramQuantile
from dashboards.grafana import Query
from dashboards.promql import with_matchers
from dashboards.series import ALERTS, labels_of
from dashboards.signals import RATE

BY_PRIORITY = ("instance", "model", "priority")


def _matchers(name: str) -> dict[str, str]:
    if name == ALERTS:
        # An alert without the label (Watchdog, an SLO burn across replicas) shows whatever
        # is selected: `$job|` also matches the empty value.
        return {label: f"${label}|" for label in ("job", "instance", "model")}
    return {label: f"${label}" for label in labels_of(name)}


def scoped(expr: str) -> str:
    """`expr` with `label=~"$label"` on every selector, for each variable the series has."""
    return with_matchers(expr, _matchers)


def q(expr: str, legend: str = "", *, exemplar: bool = False, instant: bool = False) -> Query:
    return Query(scoped(expr), legend, exemplar=exemplar, instant=instant)


def rate(metric: str, by: tuple[str, ...]) -> str:
    return CounterRate(metric=metric, by=by).promql(RATE)


def increase(metric: str, by: tuple[str, ...]) -> str:
    return f"sum by ({', '.join(by)}) (increase({metric}[{RATE}]))"


def quantile(metric: str, q_: float, by: tuple[str, ...]) -> str:
    return HistogramQuantile(metric=metric, q=q_, by=by).promql(RATE)


def legend(*labels: str) -> str:
    return " ".join(f"{{{{{label}}}}}" for label in labels)
