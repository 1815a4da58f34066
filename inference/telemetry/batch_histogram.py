"""A histogram that takes a whole request's observations in one call.

Inter-token latency is one observation per generated token. prometheus-client's `Histogram`
takes them one at a time (a lock and a linear bucket walk each), which made it the largest
single cost of telemetry per request. Here a request's gaps are binned with `bisect` and added
under one lock; the exposition (buckets, `_count`, `_sum`, exemplars) is the same.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString


@dataclass
class _Series:
    counts: list[int]
    total: float = 0.0
    exemplars: list[Exemplar | None] = field(default_factory=list)


class BatchHistogram(Collector):
    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self._bounds = sorted(float(b) for b in buckets if not math.isinf(b))
        self._les = [floatToGoString(b) for b in self._bounds] + ["+Inf"]
        self._series: dict[tuple[str, ...], _Series] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def labels(self, *values: str) -> None:
        """Create the series now, so it is exported (at 0) before the first observation."""
        with self._lock:
            self._get(tuple(values))

    def observe_many(
        self,
        values: Iterable[str],
        observations: Sequence[float],
        exemplar: dict[str, str] | None = None,
    ) -> None:
        """Add all `observations`; the largest one carries `exemplar` (the one worth a trace)."""
        if not observations:
            return
        key = tuple(values)
        slots = [bisect.bisect_left(self._bounds, v) for v in observations]
        with self._lock:
            series = self._get(key)
            for slot, value in zip(slots, observations, strict=True):
                series.counts[slot] += 1
                series.total += value  # one at a time: the same float sum as Histogram
            if exemplar is not None:
                largest = max(observations)
                slot = bisect.bisect_left(self._bounds, largest)
                series.exemplars[slot] = Exemplar(exemplar, largest, time.time())

    def _get(self, key: tuple[str, ...]) -> _Series:
        if len(key) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {key}")
        series = self._series.get(key)
        if series is None:
            size = len(self._les)
            series = _Series(counts=[0] * size, exemplars=[None] * size)
            self._series[key] = series
        return series

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            snapshot = [
                (key, list(s.counts), s.total, list(s.exemplars)) for key, s in self._series.items()
            ]
        for key, counts, total, exemplars in snapshot:
            buckets: list[tuple[str, float] | tuple[str, float, Exemplar]] = []
            cumulative = 0
            for le, count, exemplar in zip(self._les, counts, exemplars, strict=True):
                cumulative += count
                if exemplar is None:
                    buckets.append((le, cumulative))
                else:
                    buckets.append((le, cumulative, exemplar))
            family.add_metric(list(key), buckets, total)
        return [family]
