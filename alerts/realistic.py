"""Realistic latency spreads of LLM serving, as the review replayed them through the rules.

Time to first token, queue wait and the gaps between tokens are log-normal; a whole request
lasts its first token plus one gap per output token, and output lengths are log-normal too, so
the request duration's median is about 3 s and its p99 about 20 s. A slowdown multiplies every
latency of a family. `Stalls` adds a share of gaps that all take one long time (a prefill
that holds up the batch), the shape a p99 guard inside a bucket misreads. These are
alerts/raw_series.py's `Shape`s for the realistic promtool cases (alerts/replay_cases.py) and
the measured detection delays (alerts/detection_delays.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from statistics import NormalDist

from alerts.exposition import DURATION, INTER_TOKEN, QUEUE_WAIT, TTFT

_NORMAL = NormalDist()
_POINTS = 64  # output lengths the duration mixes (their quantiles)


@dataclass(frozen=True, kw_only=True)
class Realistic:
    """Medians (s) and log-spreads of each family; the output length in tokens."""

    ttft: tuple[float, float] = (0.25, 0.5)  # p99 0.8 s: inside the 99% < 1 s TTFT SLO
    queue_wait: tuple[float, float] = (0.02, 1.0)
    inter_token: tuple[float, float] = (0.03, 0.35)
    output_tokens: tuple[float, float] = (90.0, 0.9)
    duration_spread: float = 0.25  # of one request's duration around first token + gaps
    other: tuple[float, float] = (0.05, 0.5)  # a latency histogram not modelled here

    def shares(self, family: str, bounds: tuple[float, ...], slowdown: float) -> list[float]:
        return list(_shares(self, family, bounds, slowdown))

    def cdf(self, family: str, x: float) -> float:
        """P(latency <= x) at no slowdown."""
        if x <= 0:
            return 0.0
        if family == DURATION:
            durations = _durations(self)
            return sum(_lognormal(d, self.duration_spread, x) for d in durations) / len(durations)
        known = {TTFT: self.ttft, QUEUE_WAIT: self.queue_wait, INTER_TOKEN: self.inter_token}
        median, sigma = known.get(family, self.other)
        return _lognormal(median, sigma, x)

    def quantile(self, family: str, q: float) -> float:
        """The true q-quantile at no slowdown (bisection on the CDF)."""
        lo, hi = 1e-6, 1e4
        for _ in range(200):
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if self.cdf(family, mid) < q else (lo, mid)
        return math.sqrt(lo * hi)


def _lognormal(median: float, sigma: float, x: float) -> float:
    return _NORMAL.cdf(math.log(x / median) / sigma)


@cache
def _durations(shape: Realistic) -> tuple[float, ...]:
    median, sigma = shape.output_tokens
    first, gap = shape.ttft[0], shape.inter_token[0]
    return tuple(
        first + gap * median * math.exp(sigma * _NORMAL.inv_cdf((j + 0.5) / _POINTS))
        for j in range(_POINTS)
    )


@cache
def _shares(
    shape: Realistic, family: str, bounds: tuple[float, ...], slowdown: float
) -> tuple[float, ...]:
    cdf = [shape.cdf(family, b / slowdown) for b in bounds]
    return tuple(b - a for a, b in zip((0.0, *cdf), (*cdf, 1.0), strict=True))


@dataclass(frozen=True, kw_only=True)
class Stalls:
    """`base`, with a `share` of one family's observations all at `at` seconds (times the
    slowdown)."""

    base: Realistic
    family: str
    share: float
    at: float

    def shares(self, family: str, bounds: tuple[float, ...], slowdown: float) -> list[float]:
        out = self.base.shares(family, bounds, slowdown)
        if family != self.family:
            return out
        out = [(1 - self.share) * s for s in out]
        at = self.at * slowdown
        index = next((i for i, b in enumerate(bounds) if at <= b), len(bounds))
        out[index] += self.share
        return out
