"""Graceful shutdown as Kubernetes expects it: on SIGTERM the pod keeps listening while the
endpoints controller takes it out of rotation, so `/ready` turns 503 at once and new work gets
a fast 503 with Retry-After (another replica can take it); requests already accepted get the
grace period to finish, and whatever still runs at its end is cut with an error the client sees
(an SSE error event and `[DONE]`, or a 503), counted as a failure of ours, never as the client
leaving."""

from __future__ import annotations

import asyncio
import logging

from inference.api.tracked import TrackedStream
from inference.backend import RejectedError

log = logging.getLogger(__name__)

SHUTDOWN_MESSAGE = "the server shut down before this request finished; retry it"
# After the grace period, how long the cut requests may take to wind down.
CUT_TIMEOUT_SECONDS = 5.0


class Drain:
    def __init__(self) -> None:
        self.draining = False
        self._live: set[TrackedStream] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def admit(self) -> None:
        if self.draining:
            raise RejectedError(
                "the server is shutting down; retry (another replica will answer)",
                reason="shutting_down",
                status=503,
                retry_after=1.0,
                code="shutting_down",
            )

    def track(self, tracked: TrackedStream) -> None:
        self._live.add(tracked)
        self._idle.clear()
        tracked.on_end(self._untrack)

    def _untrack(self, tracked: TrackedStream) -> None:
        self._live.discard(tracked)
        if not self._live:
            self._idle.set()

    @property
    def in_flight(self) -> int:
        return len(self._live)

    async def run(self, grace_seconds: float) -> int:
        """Refuse new work, wait up to `grace_seconds` for accepted work, cut the rest.
        Returns how many requests were cut."""
        self.draining = True
        log.info("draining", extra={"fields": {"in_flight": self.in_flight}})
        if await _wait(self._idle, grace_seconds):
            return 0
        cut = list(self._live)
        log.warning("grace period over; cutting requests", extra={"fields": {"cut": len(cut)}})
        for tracked in cut:
            await tracked.abort(SHUTDOWN_MESSAGE)
        await _wait(self._idle, CUT_TIMEOUT_SECONDS)
        return len(cut)


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True
