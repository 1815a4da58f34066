"""The upstreams one service serves through: each one's own queue figures (from its /metrics),
its health (from /health), the work inferwatch has outstanding on it, and the choice of where
the next request goes.

Why least outstanding work by the upstream's own figures: vLLM's `num_requests_waiting` and
`num_requests_running` count every client's requests, not only ours, and they lag by at most
one poll; inferwatch's own in-flight count is exact but blind to other clients. The larger of
the two is each upstream's load, so neither a stale poll nor a second client hides one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

from inference.backend import Priority

log = logging.getLogger("inferwatch.upstream")

WAITING = "vllm:num_requests_waiting"
RUNNING = "vllm:num_requests_running"
KV_USAGE = "vllm:kv_cache_usage_perc"
_FIGURES = (WAITING, RUNNING, KV_USAGE)
# The longest a scrape waits for the upstreams' /metrics: past it, the last poll's figures
# serve (an overloaded vLLM can take seconds to answer, and Prometheus times a scrape out).
SCRAPE_READ_SECONDS = 1.0


def read_figures(text: str) -> dict[str, float]:
    """vLLM's queue figures from a /metrics text, summed over its label sets (one per engine
    and model). A line scan, not a full parse: the page holds dozens of histograms and is read
    twice a second. A figure the page lacks is absent, never zero."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("vllm:"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in _FIGURES:
            try:
                value = float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                continue
            out[name] = out.get(name, 0.0) + value
    return out


@dataclass
class Pending:
    """A request sent to an upstream that has not yet had its first token."""

    priority: Priority
    sent: float


@dataclass
class Upstream:
    url: str  # base URL without /v1
    healthy: bool = False  # until the first good check
    failures: int = 0  # consecutive failed checks
    in_flight: int = 0  # inferwatch's requests on it now
    figures: dict[str, float] = field(default_factory=dict)  # the last /metrics reading
    polled: float | None = None  # when `figures` was read (monotonic)
    pending: dict[int, Pending] = field(default_factory=dict)  # by a per-pool ticket
    answered: float | None = None  # when a request of ours last got an answer from it

    @property
    def load(self) -> float:
        """Outstanding work: its own waiting + running, or ours if that is larger."""
        theirs = self.figures.get(WAITING, 0.0) + self.figures.get(RUNNING, 0.0)
        return max(float(self.in_flight), theirs)

    def take_figures(self, metrics_text: str) -> None:
        self.figures = read_figures(metrics_text)
        self.polled = time.monotonic()

    def waiting_pending(self, by_priority: bool = False) -> list[Pending]:
        """Which of our not-yet-started requests vLLM's waiting count stands for: with its
        default FCFS policy it schedules in arrival order, so they are the most recently sent;
        with its priority policy (`by_priority`), the least important, then the latest."""
        count = int(self.figures.get(WAITING, 0.0))
        if count <= 0:
            return []
        if by_priority:
            ordered = sorted(self.pending.values(), key=lambda p: (p.priority.rank, p.sent))
        else:
            ordered = sorted(self.pending.values(), key=lambda p: p.sent)
        return ordered[-count:]


class NoUpstreamError(Exception):
    """Every upstream is out of rotation (or already tried for this request)."""


class UpstreamPool:
    def __init__(
        self,
        urls: Iterable[str],
        client: httpx.AsyncClient,
        *,
        poll_seconds: float,
        eject_failures: int,
        by_priority: bool = False,
    ) -> None:
        self.upstreams = [Upstream(url.rstrip("/").removesuffix("/v1")) for url in urls]
        if not self.upstreams:
            raise ValueError("no upstream given")
        self._client = client
        self.poll_seconds = poll_seconds
        self.eject_failures = eject_failures
        self.by_priority = by_priority  # the upstreams schedule by priority (vLLM's policy)
        self._task: asyncio.Task[None] | None = None
        self._ticket = itertools.count()
        self._turn = itertools.count()  # ties go round the pool

    # -- choice -----------------------------------------------------------------------------
    def choose(self, exclude: Iterable[Upstream] = ()) -> Upstream:
        skip = {id(u) for u in exclude}
        live = [u for u in self.upstreams if u.healthy and id(u) not in skip]
        if not live:
            raise NoUpstreamError("no healthy upstream is left to try")
        least = min(u.load for u in live)
        tied = [u for u in live if u.load == least]
        return tied[next(self._turn) % len(tied)]

    def begin(self, upstream: Upstream, priority: Priority) -> int:
        upstream.in_flight += 1
        ticket = next(self._ticket)
        upstream.pending[ticket] = Pending(priority, time.monotonic())
        return ticket

    @staticmethod
    def started(upstream: Upstream, ticket: int) -> None:
        upstream.pending.pop(ticket, None)
        upstream.answered = time.monotonic()

    @staticmethod
    def end(upstream: Upstream, ticket: int) -> None:
        upstream.pending.pop(ticket, None)
        upstream.in_flight -= 1

    def eject(self, upstream: Upstream, why: str) -> None:
        """Out of rotation at once (a request found it dead); the checks bring it back."""
        if upstream.healthy:
            log.warning("upstream ejected", extra={"fields": {"url": upstream.url, "why": why}})
        upstream.healthy = False
        upstream.failures = max(upstream.failures, self.eject_failures)
        upstream.figures = {}

    # -- checks -----------------------------------------------------------------------------
    async def check_all(self) -> None:
        await asyncio.gather(*(self._check(u) for u in self.upstreams))

    async def _check(self, upstream: Upstream) -> None:
        # An overloaded vLLM answers /metrics slowly (seconds at 3x its capacity): a slow check
        # is not a dead upstream.
        timeout = httpx.Timeout(max(self.poll_seconds * 10, 5.0))
        slow = False
        try:
            health = await self._client.get(upstream.url + "/health", timeout=timeout)
            metrics = await self._client.get(upstream.url + "/metrics", timeout=timeout)
            ok = health.status_code == 200 and metrics.status_code == 200
        except httpx.TimeoutException as exc:
            ok, slow, why = False, True, f"{type(exc).__name__}: {exc}"
        except httpx.HTTPError as exc:
            ok, why = False, f"{type(exc).__name__}: {exc}"
        else:
            why = f"/health {health.status_code}, /metrics {metrics.status_code}"
        if ok:
            upstream.take_figures(metrics.text)
            if not upstream.healthy:
                log.info("upstream healthy", extra={"fields": {"url": upstream.url}})
            upstream.healthy, upstream.failures = True, 0
            return
        if slow and self._answering(upstream):
            return  # busy, and still answering our requests: keep it, keep its last figures
        upstream.failures += 1
        if upstream.failures >= self.eject_failures:
            self.eject(upstream, why)

    async def refresh_figures(self, timeout: float = SCRAPE_READ_SECONDS) -> None:
        """Each healthy upstream's /metrics read now (for a scrape), all at once and within
        `timeout`. Only the figures: health stays the checks' business, so a reading that
        fails or comes late leaves the last one (at most one poll old) and ejects nobody."""
        live = [u for u in self.upstreams if u.healthy]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*map(self._read_figures, live)), timeout)

    async def _read_figures(self, upstream: Upstream) -> None:
        try:
            response = await self._client.get(upstream.url + "/metrics")
        except httpx.HTTPError:
            return
        if response.status_code == 200 and upstream.healthy:
            upstream.take_figures(response.text)

    def _answering(self, upstream: Upstream) -> bool:
        """It gave one of our requests its first token within the last few check periods."""
        recent = 2 * self.eject_failures * max(self.poll_seconds * 10, 5.0)
        return upstream.answered is not None and time.monotonic() - upstream.answered < recent

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                await self.check_all()
            except Exception:  # one bad round must not end the watching
                log.exception("upstream check failed")
            await asyncio.sleep(self.poll_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
