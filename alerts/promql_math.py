"""Prometheus 2.42's float arithmetic for rate(), histogram_quantile() and quantile_over_time().

Ported operation for operation (promql/functions.go, promql/quantile.go) so the in-process
evaluator and Prometheus reach the same verdict on the same samples, down to the last bit where
the operation order allows it. Timestamps are integer milliseconds, as in Prometheus.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Point = tuple[int, float]  # (timestamp ms, value)


def extrapolated_rate(
    points: Sequence[Point], range_start: int, range_end: int, *, is_rate: bool = True
) -> float | None:
    """rate() (or, with `is_rate` false, increase()) of one counter over [range_start,
    range_end]; None where Prometheus drops it."""
    if len(points) < 2:
        return None
    first_t, first_v = points[0]
    last_t, last_v = points[-1]
    result = last_v - first_v
    prev = first_v
    for _, value in points[1:]:
        if value < prev:  # counter reset
            result += prev
        prev = value
    duration_to_start = (first_t - range_start) / 1000
    duration_to_end = (range_end - last_t) / 1000
    sampled_interval = (last_t - first_t) / 1000
    average_between = sampled_interval / (len(points) - 1)
    if result > 0 and first_v >= 0:
        # Counters start at zero: never extrapolate below it.
        duration_to_zero = sampled_interval * (first_v / result)
        if duration_to_zero < duration_to_start:
            duration_to_start = duration_to_zero
    threshold = average_between * 1.1
    extrapolate_to = sampled_interval
    extrapolate_to += duration_to_start if duration_to_start < threshold else average_between / 2
    extrapolate_to += duration_to_end if duration_to_end < threshold else average_between / 2
    factor = extrapolate_to / sampled_interval
    if is_rate:
        factor /= (range_end - range_start) / 1000
    return result * factor


def parse_le(text: str) -> float | None:
    """Go's strconv.ParseFloat as histogram_quantile uses it on the `le` label."""
    try:
        return float(text)
    except ValueError:
        return None


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """histogram_quantile over (upper bound, cumulative count) pairs, linear within a bucket."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets, key=lambda b: b[0])
    if not ordered or not math.isinf(ordered[-1][0]) or ordered[-1][0] < 0:
        return math.nan
    merged: list[list[float]] = []
    for bound, count in ordered:  # coalesceBuckets
        if merged and merged[-1][0] == bound:
            merged[-1][1] += count
        else:
            merged.append([bound, count])
    highest = -math.inf
    for bucket in merged:  # ensureMonotonic
        if bucket[1] > highest:
            highest = bucket[1]
        elif bucket[1] < highest:
            bucket[1] = highest
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next(i for i in range(len(merged)) if i == len(merged) - 1 or merged[i][1] >= rank)
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start = 0.0
    end, count = merged[b]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return start + (end - start) * (rank / count)


def quantile(q: float, values: Sequence[float]) -> float:
    """quantile_over_time's interpolation between the two closest ranks."""
    if not values:
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(values)
    n = float(len(ordered))
    rank = q * (n - 1)
    lower = max(0.0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[int(lower)] * (1 - weight) + ordered[int(upper)] * weight
