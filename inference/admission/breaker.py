"""A circuit breaker on engine failures (resilience4j's state machine, count-based window).

Closed: outcomes go into a window of the last `window` calls; once at least `min_calls` are in
it and `failure_ratio` of them failed, it opens. Open: every new request is refused at once
(503, reason circuit_open) for `open_s`. Half-open: `trial_calls` requests go through; if as
many of them succeed as `failure_ratio` allows, it closes, else it opens again. Only engine
failures count: refusals, cancellations and deadline cuts say nothing about the engine.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    def __init__(
        self,
        *,
        window: int = 20,
        min_calls: int = 10,
        failure_ratio: float = 0.5,
        open_s: float = 5.0,
        trial_calls: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < failure_ratio <= 1 or min_calls < 1 or window < min_calls:
            raise ValueError("need 0 < failure_ratio <= 1 and 1 <= min_calls <= window")
        self.failure_ratio = failure_ratio
        self.min_calls = min_calls
        self.open_s = open_s
        self.trial_calls = trial_calls
        self._clock = clock
        self._lock = threading.Lock()
        self._outcomes: deque[bool] = deque(maxlen=window)  # True = failed
        self._state = CLOSED
        self._opened_at = 0.0
        self._trials_started = 0
        self._trials: list[bool] = []

    @property
    def state(self) -> str:
        with self._lock:
            self._maybe_half_open()
            return self._state

    def allow(self) -> float | None:
        """None when a call may go ahead (counted as a trial when half-open); else the seconds
        until the breaker next lets a trial through."""
        with self._lock:
            self._maybe_half_open()
            if self._state == CLOSED:
                return None
            if self._state == HALF_OPEN and self._trials_started < self.trial_calls:
                self._trials_started += 1
                return None
            if self._state == OPEN:
                return max(0.0, self._opened_at + self.open_s - self._clock())
            return self.open_s / 2  # half-open with every trial out: they end soon

    def abandon(self) -> None:
        """A call `allow()` let through never reached the engine (refused further on)."""
        with self._lock:
            if self._state == HALF_OPEN and self._trials_started > len(self._trials):
                self._trials_started -= 1

    def record(self, failed: bool) -> None:
        with self._lock:
            if self._state == HALF_OPEN:
                self._trials.append(failed)
                failures = sum(self._trials)
                if failures > (1 - self.failure_ratio) * self.trial_calls:
                    self._open()
                elif len(self._trials) >= self.trial_calls:
                    self._state = CLOSED
                    self._outcomes.clear()
                return
            if self._state == OPEN:
                return  # a call admitted before it opened: the window restarts anyway
            self._outcomes.append(failed)
            n = len(self._outcomes)
            if n >= self.min_calls and sum(self._outcomes) >= self.failure_ratio * n:
                self._open()

    def _open(self) -> None:
        self._state = OPEN
        self._opened_at = self._clock()
        self._outcomes.clear()

    def _maybe_half_open(self) -> None:
        if self._state == OPEN and self._clock() >= self._opened_at + self.open_s:
            self._state = HALF_OPEN
            self._trials_started = 0
            self._trials = []
