"""The adaptive in-flight limit, counted in KV tokens (prompt + max_tokens of each request).

Netflix's Gradient2 (as in Envoy's adaptive concurrency filter), on two latency signals, time to
first token and time per output token: each keeps a long and a short average, and

    gradient = clamp(tolerance * long / short, 0.5, 1)
    limit    = limit * gradient + queue_allowance,   smoothed

with the smaller of the two gradients. A KV token is the unit because one request with a
4000-token prompt costs the engine what forty short ones do. The limit also stays within a
Little's-law bound, in-flight <= drain rate x tolerated residence time, with the drain rate
taken as the best busy second lately (an idle service's low throughput says nothing about its
capacity).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

# Gradient2's own defaults: a 600-sample long window, smoothing 0.2, gradient floor 0.5.
LONG_WINDOW = 600
SHORT_WINDOW = 10
SMOOTHING = 0.2
MIN_GRADIENT = 0.5
# The long average keeps learning while in breach, this many times slower: a sustained overload
# must not become the new normal within a minute, but a real shift is learned eventually.
BREACH_SLOWDOWN = 10
# The capacity estimate forgets a past peak by 1% a second (halved in about a minute).
PEAK_DECAY = 0.99


class Ewma:
    """Exponentially weighted moving average over about `window` samples."""

    def __init__(self, window: float) -> None:
        self.alpha = 2.0 / (window + 1.0)
        self.value: float | None = None

    def update(self, sample: float, weight: float = 1.0) -> float:
        if self.value is None:
            self.value = sample
        else:
            self.value += self.alpha * weight * (sample - self.value)
        return self.value


class Gradient:
    """Gradient2 on one latency signal."""

    def __init__(self, tolerance: float) -> None:
        self.tolerance = tolerance
        self.long = Ewma(LONG_WINDOW)
        self.short = Ewma(SHORT_WINDOW)

    def observe(self, seconds: float) -> None:
        short = self.short.update(seconds)
        long = self.long.value
        breach = long is not None and short > self.tolerance * long
        long = self.long.update(seconds, 1.0 / BREACH_SLOWDOWN if breach else 1.0)
        if long > 2 * short:  # recovering after a change: forget the slow past quickly
            self.long.value = long * 0.95

    @property
    def gradient(self) -> float:
        long, short = self.long.value, self.short.value
        if long is None or short is None or short <= 0:
            return 1.0
        return max(MIN_GRADIENT, min(1.0, self.tolerance * long / short))


class DrainRate:
    """KV tokens finished per second: now (for Retry-After), and the best a busy second has
    shown, decaying slowly (the capacity estimate of the Little bound). A peak, not an average:
    while the limit itself holds throughput down, the average drain would follow the limit
    down, and the bound derived from it would close the service by steps."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._start = clock()
        self._tokens = 0.0
        self._busy = False
        self.rate = Ewma(3)
        self.peak: float | None = None

    def finished(self, cost: float, busy: bool) -> None:
        self._roll()
        self._tokens += cost
        self._busy = self._busy or busy

    def _roll(self) -> None:
        now = self._clock()
        elapsed = now - self._start
        if elapsed < 1.0:
            return
        per_second = self._tokens / elapsed
        smoothed = self.rate.update(per_second)
        if self.peak is not None:
            self.peak *= PEAK_DECAY ** min(elapsed, 600.0)
        if self._busy and (self.peak is None or smoothed > self.peak):
            self.peak = smoothed
        self._start, self._tokens, self._busy = now, 0.0, False

    def current(self) -> float | None:
        self._roll()
        return self.rate.value


class AdaptiveLimit:
    """The in-flight limit in KV tokens, between `minimum` and `maximum`."""

    def __init__(
        self,
        *,
        initial: float,
        minimum: float,
        maximum: float,
        tolerance: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < minimum <= maximum:
            raise ValueError("need 0 < minimum <= maximum")
        self.minimum, self.maximum = minimum, maximum
        self.limit = max(minimum, min(initial, maximum))
        self.tolerance = tolerance
        self.ttft = Gradient(tolerance)
        self.tpot = Gradient(tolerance)
        self.duration = Gradient(tolerance)  # only its long average: the tolerated residence
        self.cost = Ewma(100)
        self.drain = DrainRate(clock)

    @property
    def gradient(self) -> float:
        """The smaller of the two signals' gradients."""
        return min(self.ttft.gradient, self.tpot.gradient)

    def busy(self, inflight: float) -> bool:
        """At least half the limit in use: latency then says something about the limit."""
        return inflight >= self.limit / 2

    def observe_first_token(self, ttft: float, cost: float) -> None:
        """A first token arrived: the earliest word on queueing, long before the request ends
        (a limit that waited for completions would learn of a deep queue seconds late)."""
        self.ttft.observe(ttft)
        self.cost.update(cost)

    def observe_finished(
        self, cost: float, busy: bool, tpot: float | None, duration: float | None
    ) -> None:
        self.drain.finished(cost, busy)
        if tpot is not None:
            self.tpot.observe(tpot)
        if duration is not None:
            self.duration.observe(duration)

    def on_first_token(self, ttft: float, cost: float, inflight: float) -> float:
        self.observe_first_token(ttft, cost)
        return self.adjust(self.busy(inflight + cost))

    def on_finished(
        self,
        cost: float,
        inflight: float,
        tpot: float | None,
        duration: float | None,
    ) -> float:
        """One completed request: its cost, the in-flight cost when it ended, its latencies."""
        busy = self.busy(inflight + cost)
        self.observe_finished(cost, busy, tpot, duration)
        return self.adjust(busy)

    def adjust(self, busy: bool, gradient: float | None = None, congested: bool = True) -> float:
        """One Gradient2 step, with this limit's own gradient unless told a smaller one (a
        less important class also yields to the latency of the classes above it). Without
        congestion (nothing of the class's rank queues behind the backend) neither the gradient
        nor the Little bound lowers the limit: latencies and residence learned at idle are no
        measure of a busy batch, and a bound from the class's own drain, held down by the
        limit, would hold the limit down in turn."""
        gradient = self.gradient if gradient is None else gradient
        if not congested:
            gradient = max(gradient, 1.0)
        avg_cost = self.cost.value or self.minimum  # a class that has no sample of its own yet
        if not busy and gradient >= 1.0:
            return self.limit  # app-limited: an idle limit must not grow without evidence
        allowance = avg_cost * math.sqrt(max(1.0, self.limit / avg_cost))
        proposed = self.limit * gradient + allowance
        limit = (1 - SMOOTHING) * self.limit + SMOOTHING * proposed
        bound = self.little_bound() if congested else None
        if bound is not None:
            limit = min(limit, max(bound, avg_cost))
        self.limit = max(self.minimum, min(limit, self.maximum))
        return self.limit

    def little_bound(self) -> float | None:
        """Little's law: in flight = throughput x residence time, at the tolerated residence."""
        rate, residence = self.drain.peak, self.duration.long.value
        if rate is None or residence is None:
            return None
        return rate * self.tolerance * residence
