"""How long a refused client should wait, per priority class: honest and bounded.

The estimate is the time the measured drain rate needs to make room for the request, floored
by a backoff that grows while refusals of that class go on (Kubernetes APF-style: 1 s, 2 s,
4 s ... 32 s as the streak lengthens; it starts over once the class has gone a whole backoff
without a refusal), with +-20% jitter so refused clients do not come back in step. It always
stays within (0, 60] s, well inside the 120 s the official openai client still honours.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

BASE_S = 1.0
CEILING_S = 32.0
MAX_S = 60.0  # never near the openai client's 120 s, past which it does not retry at all
JITTER = 0.2


@dataclass
class _Streak:
    started: float
    last: float


class RetryAdvisor:
    """Streaks are kept per key: a priority class for 503s, an API key's tenant for 429s."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._rng = rng or random.Random()
        self._streaks: dict[Hashable, _Streak] = {}
        self._lock = threading.Lock()

    def backoff(self, key: Hashable) -> float:
        """The current floor for this class, without counting a refusal."""
        with self._lock:
            streak = self._streaks.get(key)
            return BASE_S if streak is None else _grown(self._clock() - streak.started)

    def refused(self, key: Hashable, estimate: float | None = None) -> float:
        """Seconds to tell a client refused now; counts the refusal in the class's streak."""
        with self._lock:
            now = self._clock()
            streak = self._streaks.get(key)
            if streak is None or now - streak.last > _grown(streak.last - streak.started):
                streak = self._streaks[key] = _Streak(now, now)
            streak.last = now
            floor = _grown(now - streak.started)
            wait = max(floor, estimate or 0.0)
            jittered = wait * (1 + JITTER * (2 * self._rng.random() - 1))
            return min(MAX_S, max(BASE_S * (1 - JITTER), jittered))


class Backlog:
    """Work refused and told to come back, per key, as a virtual queue that drains at the
    measured rate: the k-th client refused in a burst is told to wait behind the k-1 refused
    before it, so the retries come back spread out instead of as one herd."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._queued: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, as of)
        self._lock = threading.Lock()

    def join(self, key: Hashable, tokens: float, drain_per_s: float | None) -> float:
        """Tokens refused before this one and not yet drained; this one joins behind them."""
        with self._lock:
            now = self._clock()
            queued, at = self._queued.get(key, (0.0, now))
            if drain_per_s:
                queued = max(0.0, queued - drain_per_s * (now - at))
            elif now - at > CEILING_S:
                queued = 0.0
            self._queued[key] = (queued + tokens, now)
            return queued


def _grown(streak_seconds: float) -> float:
    """1 s at first; the next power of two above the streak's length, up to 32 s."""
    wait = BASE_S
    while wait <= streak_seconds and wait < CEILING_S:
        wait *= 2
    return min(wait, CEILING_S)


def drain_estimate(excess_tokens: float, drain_tokens_per_s: float | None) -> float | None:
    """Seconds until `excess_tokens` of in-flight work have drained (None: rate unknown)."""
    if drain_tokens_per_s is None or drain_tokens_per_s <= 0:
        return None
    return max(0.0, excess_tokens) / drain_tokens_per_s
