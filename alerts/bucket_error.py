"""How far histogram_quantile() can be from the truth on a bucket layout, and what a step reads.

A baseline alert compares two interpolated quantiles, so the bucket layout decides what a real
step looks like: on doubling buckets a true 1.3x step can read 1.65x and fire a 1.5x rule. These
numbers are stated in docs/alerting.md and docs/metrics.md and checked by tests/alerts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

from alerts.promql_math import bucket_quantile

_NORMAL = NormalDist()
Cdf = Callable[[float], float]


def lognormal_cdf(median: float, sigma: float) -> Cdf:
    """Latencies are roughly log-normal: `sigma` is the spread of their logarithm."""
    return lambda x: _NORMAL.cdf(math.log(x / median) / sigma) if x > 0 else 0.0


def interpolated_quantile(q: float, bounds: Sequence[float], cdf: Cdf) -> float:
    """What histogram_quantile reads for a distribution with this CDF on these buckets."""
    pairs = [(b, cdf(b)) for b in bounds] + [(math.inf, 1.0)]
    return bucket_quantile(q, pairs)


def max_step(bounds: Sequence[float], start: float = 0.0) -> float:
    """The largest ratio of two adjacent bounds at or above `start`: the worst case of one
    quantile is this factor off (every observation of its bucket at the other end)."""
    return max(hi / lo for lo, hi in zip(bounds, bounds[1:], strict=False) if lo >= start)


@dataclass(frozen=True)
class LayoutError:
    """histogram_quantile over log-normal latencies whose p-quantile sweeps a range."""

    quantile_error: float  # max |read / true - 1| of one quantile
    reads_1_3: float  # the most a true 1.3x step reads as
    reads_2: float  # the least a true 2x step reads as


def layout_error(
    bounds: Sequence[float], q: float, sigma: float, low: float, high: float, points: int = 400
) -> LayoutError:
    """Sweep the true q-quantile from `low` to `high` (log-spaced) and keep the worst."""
    z = _NORMAL.inv_cdf(q)
    err, up, down = 0.0, 0.0, math.inf
    for i in range(points):
        true_q = low * (high / low) ** (i / (points - 1))
        median = true_q / math.exp(z * sigma)
        base = interpolated_quantile(q, bounds, lognormal_cdf(median, sigma))
        err = max(err, abs(base / true_q - 1))
        up = max(up, interpolated_quantile(q, bounds, lognormal_cdf(1.3 * median, sigma)) / base)
        down = min(down, interpolated_quantile(q, bounds, lognormal_cdf(2 * median, sigma)) / base)
    return LayoutError(quantile_error=err, reads_1_3=up, reads_2=down)
