"""The admission gate: a `Backend` in front of a `Backend`.

Every request is decided at once, before anything waits (a refusal never sits in a queue
first), in this order: the level sheds its priority -> 503 shed; the level or the class caps
its `max_tokens` (admitted, capped); its cost in KV tokens (prompt + max_tokens), added to what
its own and the more important classes have in flight, does not fit its class's adaptive limit
-> 503 concurrency_limit; the circuit breaker is open -> 503 circuit_open; else
the inner backend gets it (whose own refusals, a full queue, pass through with an estimated
Retry-After). A request that finds nothing of its rank in flight is admitted whatever its
cost, so a large request is slow, never impossible. Besides the limit, a class is refused while
the engine's queue already holds its `max_waiting` of its rank or above: that needs no latency
sample, so it holds from the first second of a burst, when no answer has come back yet.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

from inference.admission import decision as decisions
from inference.admission.breaker import CircuitBreaker
from inference.admission.concurrency import AdaptiveLimit
from inference.admission.delegate import DelegatingBackend
from inference.admission.gated_stream import COMPLETED, FAILED, Ending, GatedStream
from inference.admission.levels import Ladder
from inference.admission.refusals import CircuitOpenError, ConcurrencyLimitError, ShedError
from inference.admission.retry_after import Backlog, RetryAdvisor, drain_estimate
from inference.backend import (
    Backend,
    BackendStats,
    EngineError,
    GenerationRequest,
    InvalidRequestError,
    Priority,
    RejectedError,
    RequestStream,
)

# A queue whose oldest has waited this long is a backlog (several engine steps went by).
QUEUE_PATIENCE_S = 0.1
# A queue whose oldest has waited this long is congestion, which the adaptive limits act on. A
# step of a full batch on a loaded CPU takes 0.1-0.3 s, so a request that waited only for the
# step in progress is no sign that too much was admitted.
CONGESTION_WAIT_S = 0.5


class AdmissionGate(DelegatingBackend):
    """Implements `inference.backend.Backend` around `inner`."""

    def __init__(
        self,
        inner: Backend,
        *,
        ladder: Ladder,
        level: Callable[[], int],
        limits: Mapping[Priority, AdaptiveLimit],
        breaker: CircuitBreaker,
        advisor: RetryAdvisor,
        relief: Callable[[], float] = lambda: 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(inner)
        self.ladder = ladder
        self._level = level
        self._relief = relief
        self.limits = dict(limits)
        self.breaker = breaker
        self.advisor = advisor
        self.backlog = Backlog(clock)
        self.inflight = 0.0  # KV tokens of admitted, unfinished requests
        self.inflight_by_priority: dict[Priority, float] = {p: 0.0 for p in Priority}
        self.inflight_requests: dict[Priority, int] = {p: 0 for p in Priority}

    def class_limit(self, priority: Priority, level: int | None = None) -> float:
        """KV tokens in flight, of this class and the more important ones, past which
        `priority` is refused: its own adaptive limit, at the level's concurrency share."""
        number = self._level() if level is None else level
        return self.limits[priority].limit * self.ladder.level(number).concurrency

    def generate(self, request: GenerationRequest) -> RequestStream:
        number = self._level()
        level = self.ladder.level(number)
        priority = request.priority
        if priority in level.shed:
            decisions.annotate(number, "shed")
            raise ShedError(
                f"degradation level {number} ({level.name}) is shedding {priority.value} requests",
                retry_after=self.advisor.refused(priority, self._relief()),
            )
        request, capped = self._capped(request, number)
        cost = float(len(request.prompt_token_ids) + request.sampling.max_tokens)
        limit = self.class_limit(priority, number)
        ahead = self.ahead_of(priority)
        if ahead > 0 and ahead + cost > limit:
            decisions.annotate(number, "concurrency_limit")
            rate = self._drain(priority)
            behind = self.backlog.join(priority, cost, rate)
            wait = drain_estimate(ahead + behind + cost - limit, rate)
            raise ConcurrencyLimitError(
                f"the {priority.value} share of the in-flight limit is full "
                f"({ahead:.0f} + {cost:.0f} > {limit:.0f} KV tokens)",
                retry_after=self.advisor.refused(priority, wait),
            )
        queued = self._waiting(priority)
        allowed = max(1, int(self.ladder.service[priority].max_waiting * level.concurrency))
        if queued >= allowed:
            decisions.annotate(number, "concurrency_limit")
            rate = self._drain(priority)
            behind = self.backlog.join(priority, cost, rate)
            wait = drain_estimate((queued - allowed + 1) * cost + behind, rate)
            raise ConcurrencyLimitError(
                f"{queued} requests of {priority.value} priority or above already wait in the "
                f"engine's queue (at most {allowed} for this class)",
                retry_after=self.advisor.refused(priority, wait),
            )
        wait = self.breaker.allow()
        if wait is not None:
            decisions.annotate(number, "circuit_open")
            raise CircuitOpenError(
                "the engine has been failing; new work waits for the circuit breaker's trials",
                retry_after=self.advisor.refused(priority, wait),
            )
        try:
            inner = self.inner.generate(request)
        except (RejectedError, InvalidRequestError) as exc:
            self.breaker.abandon()
            decisions.annotate(number, getattr(exc, "reason", "invalid"))
            if isinstance(exc, RejectedError) and exc.retry_after is not None:
                exc.retry_after = self.advisor.refused(priority, self._queue_estimate())
            raise
        except EngineError:
            self.breaker.record(failed=True)
            raise
        self.inflight += cost
        self.inflight_by_priority[priority] += cost
        self.inflight_requests[priority] += 1
        decisions.annotate(
            number,
            decisions.CAPPED if capped else decisions.ADMITTED,
            max_tokens=request.sampling.max_tokens if capped else None,
        )
        return GatedStream(
            inner, request, cost,
            backend=self.inner, admitter=self,
            timeout_s=self.ladder.service[priority].timeout_s,
            retry_after=lambda: self.advisor.refused(priority, None),
        )  # fmt: skip

    def ahead_of(self, priority: Priority) -> float:
        """In-flight KV tokens of `priority` and every more important class. Less important
        work does not count: the engine preempts it for this class when room runs out."""
        return sum(v for p, v in self.inflight_by_priority.items() if p.rank <= priority.rank)

    def _capped(self, request: GenerationRequest, level: int) -> tuple[GenerationRequest, bool]:
        cap = self.ladder.max_tokens(level, request.priority)
        if cap is None or request.sampling.max_tokens <= cap:
            return request, False
        sampling = dataclasses.replace(request.sampling, max_tokens=cap)
        return dataclasses.replace(request, sampling=sampling), True

    def _waiting(
        self,
        priority: Priority,
        stats: BackendStats | None = None,
        patience: float = QUEUE_PATIENCE_S,
    ) -> int:
        """Requests of `priority` and the classes above it waiting in the engine's queue, if
        the oldest of them has waited past `patience` (else 0): a burst that arrived between
        two engine steps is not a backlog, it is the next step's batch."""
        stats = self.inner.stats() if stats is None else stats
        ranks = [p for p in Priority if p.rank <= priority.rank]
        oldest = max(stats.oldest_wait_seconds_by_priority.get(p, 0.0) for p in ranks)
        if oldest < patience:
            return 0
        return sum(stats.waiting_by_priority.get(p, 0) for p in ranks)

    def _drain(self, priority: Priority | None = None) -> float | None:
        """KV tokens a second now finishing of `priority` and the more important classes (all
        classes without one): what has to drain before this class finds room."""
        rates = [
            rate
            for p, limit in self.limits.items()
            if priority is None or p.rank <= priority.rank
            if (rate := limit.drain.current()) is not None
        ]
        return sum(rates) if rates else None

    def _queue_estimate(self) -> float | None:
        """Seconds until the engine's own queue has room: what waits there, at the drain rate."""
        stats = self.inner.stats()
        waiting = sum(stats.waiting_by_priority.values())
        costs = [c for limit in self.limits.values() if (c := limit.cost.value) is not None]
        if not costs:
            return None
        return drain_estimate(waiting * sum(costs) / len(costs), self._drain())

    def first_token(self, request: GenerationRequest, cost: float, ttft: float) -> None:
        self.limits[request.priority].observe_first_token(ttft, cost)
        self._learn(request.priority)

    def _learn(self, sampled: Priority) -> None:
        """A sample of `sampled` moves its own limit and those of the less important classes:
        each class follows the smallest gradient among itself and the classes above it, so when
        premium slows down, batch yields first; and a class starved of samples (batch, waiting
        behind everyone) still hears that the service is slow.

        A class's limit shrinks only while work of its rank has waited in the backend's queue
        past CONGESTION_WAIT_S (`AdaptiveLimit.adjust`): a fuller batch slows each first token
        without anything queueing, and a limit that took that for congestion sank to its
        floor while the engine ran half empty (premium refused a third of its requests at 60%
        of capacity)."""
        stats = self.inner.stats()
        for priority in Priority:
            if priority.rank < sampled.rank:
                continue
            gradient = min(
                limit.gradient for p, limit in self.limits.items() if p.rank <= priority.rank
            )
            congested = self._waiting(priority, stats, CONGESTION_WAIT_S) > 0
            limit = self.limits[priority]
            limit.adjust(limit.busy(self.ahead_of(priority)), gradient, congested)

    def finished(self, request: GenerationRequest, ending: Ending) -> None:
        """A gated stream ended: give its cost back; its class's limit learns from it."""
        ahead = self.ahead_of(request.priority)
        self.inflight = max(0.0, self.inflight - ending.cost)
        by = self.inflight_by_priority
        by[request.priority] = max(0.0, by[request.priority] - ending.cost)
        self.inflight_requests[request.priority] -= 1
        if ending.outcome == FAILED:
            self.breaker.record(failed=True)
            return
        if ending.outcome != COMPLETED or ending.output is None:
            return  # the client left, or its deadline cut it: nothing learned about the engine
        self.breaker.record(failed=False)
        times = ending.output.times
        tpot = duration = None
        if times.first_token is not None and times.finished is not None:
            duration = times.finished - times.arrival
            n = ending.output.completion_tokens
            if n >= 2:
                tpot = (times.finished - times.first_token) / (n - 1)
        limit = self.limits[request.priority]
        limit.observe_finished(ending.cost, limit.busy(ahead), tpot, duration)
        self._learn(request.priority)

    def snapshot(self) -> dict[str, Any]:
        level = self._level()
        return {
            "inflight_kv_tokens": round(self.inflight, 1),
            "inflight_requests": {p.value: n for p, n in self.inflight_requests.items()},
            "limits": {
                p.value: {
                    "kv_tokens": round(self.class_limit(p, level), 1),
                    "adaptive_kv_tokens": round(limit.limit, 1),
                    "little_bound_kv_tokens": _round(limit.little_bound()),
                    "drain_kv_tokens_per_second": _round(limit.drain.current()),
                    "gradients": {"ttft": limit.ttft.gradient, "tpot": limit.tpot.gradient},
                }
                for p, limit in self.limits.items()
            },
            "breaker": self.breaker.state,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
