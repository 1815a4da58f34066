"""A bounded ring buffer of timestamped snapshots of a prometheus_client registry.

The evaluator's stand-in for Prometheus' TSDB: it holds just enough history for the longest rate
window, and answers range and instant selections the way PromQL does (range selections include
both ends, as in Prometheus 2.x; a series missing from the newest snapshot is stale).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Protocol

from alerts.promql_math import Point

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs, as Prometheus orders series
Snapshot = dict[str, dict[Labels, float]]  # sample name -> series -> value


class Source(Protocol):
    """Anything with `collect()` yielding metric families: a CollectorRegistry, a collector."""

    def collect(self) -> Iterable: ...


def read_source(source: Source, names: frozenset[str]) -> Snapshot:
    """Keep only the sample names the rules use: the buffer does not grow with the registry."""
    snapshot: Snapshot = {}
    for family in source.collect():
        for sample in family.samples:
            if sample.name in names:
                labels = tuple(sorted(sample.labels.items()))
                snapshot.setdefault(sample.name, {})[labels] = float(sample.value)
    return snapshot


class SampleBuffer:
    """Snapshots no older than `retention_ms`, at most `max_snapshots` of them."""

    def __init__(self, retention_ms: int, max_snapshots: int) -> None:
        self.retention_ms = retention_ms
        self._snapshots: deque[tuple[int, Snapshot]] = deque(maxlen=max_snapshots)
        # One evaluation reads the same ranges for a replica's SLI and its fleet's.
        self._ranges: dict[tuple[str, int, int], dict[Labels, list[Point]]] = {}

    def __len__(self) -> int:
        return len(self._snapshots)

    @property
    def last_ms(self) -> int | None:
        return self._snapshots[-1][0] if self._snapshots else None

    def append(self, t_ms: int, snapshot: Snapshot) -> None:
        if self._snapshots and t_ms <= self._snapshots[-1][0]:
            raise ValueError(f"snapshot at {t_ms} ms is not after {self._snapshots[-1][0]} ms")
        self._snapshots.append((t_ms, snapshot))
        self._ranges.clear()
        while self._snapshots and self._snapshots[0][0] < t_ms - self.retention_ms:
            self._snapshots.popleft()

    def range(self, name: str, start_ms: int, end_ms: int) -> dict[Labels, list[Point]]:
        """Every series of `name` with its points in [start_ms, end_ms], in series order (the
        result is shared until the next append: read it, do not change it)."""
        key = (name, start_ms, end_ms)
        if key not in self._ranges:
            series: dict[Labels, list[Point]] = {}
            for t, snapshot in self._snapshots:
                if start_ms <= t <= end_ms:
                    for labels, value in snapshot.get(name, {}).items():
                        points = series.get(labels)
                        if points is None:
                            series[labels] = [(t, value)]
                        else:
                            points.append((t, value))
            self._ranges[key] = dict(sorted(series.items()))
        return self._ranges[key]

    def latest(self, name: str) -> dict[Labels, float]:
        if not self._snapshots:
            return {}
        return dict(sorted(self._snapshots[-1][1].get(name, {}).items()))
