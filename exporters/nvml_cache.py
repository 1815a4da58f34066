"""One NVML pass shared by concurrent scrapers, reused for a short while, bounded in time.

NVML calls can hang (a GPU falling off the bus, a driver in a bad state: the same hang that
freezes nvidia-smi). Running the pass on its own daemon thread means a scrape waits at most
`timeout_seconds` for it, and scrapes after that fail at once instead of piling up; the service's
queue metrics in the same scrape are never held hostage by the GPU.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class NvmlTimeoutError(TimeoutError):
    """The NVML pass did not finish in time (hung driver or GPU)."""


class _Pass(Generic[T]):
    """One run of the pass on a daemon thread (a hung call must not block interpreter exit)."""

    def __init__(self, run: Callable[[], T | Exception], started: float):
        self.started = started
        self.result: T | Exception | None = None
        self._done = threading.Event()
        threading.Thread(target=self._run, args=(run,), name="nvml-pass", daemon=True).start()

    def _run(self, run: Callable[[], T | Exception]) -> None:
        try:
            self.result = run()
        except Exception as exc:  # noqa: BLE001 - handed to the scraper, which raises it
            self.result = exc
        finally:
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(max(0.0, timeout))


class SharedPass(Generic[T]):
    """`get()` returns the latest result younger than `cache_seconds`, or runs the pass once for
    every caller waiting at that moment; a failed pass (an exception) is cached and raised too,
    so scrapers of a broken NVML do not each retry it."""

    def __init__(
        self,
        run: Callable[[], T | Exception],
        cache_seconds: float,
        timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._run = run
        self._cache_seconds = cache_seconds
        self._timeout_seconds = timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, T | Exception] | None = None
        self._pending: _Pass[T] | None = None

    def get(self) -> T:
        with self._lock:
            now = self._clock()
            if self._cached is not None and now - self._cached[0] < self._cache_seconds:
                return _unwrap(self._cached[1])
            pending = self._pending
            if (
                pending is not None
                and pending.done
                and now - pending.started >= self._cache_seconds
            ):
                pending = None  # finished after its scrapers gave up, and stale by now
            if pending is None:
                pending = self._pending = _Pass(self._run, now)
        # Waiting happens outside the lock; only callers within the timeout of the start wait.
        if not pending.wait(pending.started + self._timeout_seconds - now):
            raise NvmlTimeoutError(
                f"NVML pass still running after {self._timeout_seconds:g} s (hung driver or GPU?)"
            )
        with self._lock:
            if self._pending is pending:
                self._pending = None
                self._cached = (pending.started, pending.result)  # type: ignore[assignment]
        return _unwrap(pending.result)  # type: ignore[arg-type]


def _unwrap(result: T | Exception) -> T:
    if isinstance(result, Exception):
        raise result
    return result
