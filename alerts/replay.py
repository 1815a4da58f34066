"""Raw series replayed through the in-process evaluator under any timing, sample by sample.

The evaluator reads a prometheus_client source; `SeriesSource` serves one sample index of a
built series as that source would (a replica that does not exist at that sample is absent).
With Prometheus' timing the evaluator's verdicts are promtool's (the agreement test checks it),
which is what lets alerts/detection_delays.py measure a delay and promtool then prove it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from alerts.evaluator import AlertState, Evaluator
from alerts.raw_series import Series
from alerts.sli import GroupKey
from alerts.spec_types import Spec, Timing


class SeriesSource:
    """Serves the samples of index `index`, as the service's registry would at that time."""

    def __init__(self, series: Series) -> None:
        self.series = series
        self.index = 0

    def collect(self) -> Iterator[Metric]:
        metric = Metric("replayed", "replayed series", "unknown")
        for name, by_labels in self.series.items():
            for labels, values in by_labels.items():
                value = values[self.index]
                if value is not None:
                    metric.add_sample(name, dict(labels), value)
        yield metric


@dataclass(frozen=True)
class Verdict:
    """The evaluator after one sample: its active alerts and its gated SLIs with baselines."""

    t: int
    states: list[AlertState]
    slis: dict[tuple[str, GroupKey], tuple[float, float | None, float | None]]


def replay(spec: Spec, series: Series, times: range, timing: Timing | None = None) -> list[Verdict]:
    """The evaluator's verdict after each sample at `times` (whole seconds from 0)."""
    source = SeriesSource(series)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(source)
    evaluator = Evaluator(spec, registry, clock=lambda: 0.0, timing=timing or spec.prometheus)
    out = []
    for index, t in enumerate(times):
        source.index = index
        states = evaluator.step(float(t))
        out.append(Verdict(t, states, dict(evaluator.last_slis)))
    return out
