"""The admission gate: a `Backend` in front of a `Backend`.

Every request is decided at once, before anything waits (a refusal never sits in a queue
first), in this order: the level sheds its priority -> 503 shed; the level or the class caps
its `max_tokens` (admitted, capped); its cost in KV tokens (prompt + max_tokens), added to what
its own and the more important classes have in flight, does not fit its class's share of the
adaptive limit -> 503 concurrency_limit; the circuit breaker is open -> 503 circuit_open; else
the inner backend gets it (whose own refusals, a full queue, pass through with an estimated
Retry-After). A request that finds nothing of its rank in flight is admitted whatever its
cost, so a large request is slow, never impossible.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
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
    EngineError,
    GenerationRequest,
    InvalidRequestError,
    Priority,
    RejectedError,
    RequestStream,
)


class AdmissionGate(DelegatingBackend):
    """Implements `inference.backend.Backend` around `inner`."""

    def __init__(
        self,
        inner: Backend,
        *,
        ladder: Ladder,
        level: Callable[[], int],
        limit: AdaptiveLimit,
        breaker: CircuitBreaker,
        advisor: RetryAdvisor,
        relief: Callable[[], float] = lambda: 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(inner)
        self.ladder = ladder
        self._level = level
        self._relief = relief
        self.limit = limit
        self.breaker = breaker
        self.advisor = advisor
        self.backlog = Backlog(clock)
        self.inflight = 0.0  # KV tokens of admitted, unfinished requests
        self.inflight_by_priority: dict[Priority, float] = {p: 0.0 for p in Priority}
        self.inflight_requests: dict[Priority, int] = {p: 0 for p in Priority}

    def class_limit(self, priority: Priority, level: int | None = None) -> float:
        """KV tokens in flight, of this class and the more important ones, past which
        `priority` is refused."""
        number = self._level() if level is None else level
        service = self.ladder.service[priority]
        adaptive = max(self.limit.limit * service.share, self.limit.maximum * service.min_share)
        return adaptive * self.ladder.level(number).concurrency

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
            rate = self.limit.drain.current()
            behind = self.backlog.join(priority, cost, rate)
            wait = drain_estimate(ahead + behind + cost - limit, rate)
            raise ConcurrencyLimitError(
                f"the {priority.value} share of the in-flight limit is full "
                f"({ahead:.0f} + {cost:.0f} > {limit:.0f} KV tokens)",
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

    def _queue_estimate(self) -> float | None:
        """Seconds until the engine's own queue has room: what waits there, at the drain rate."""
        stats = self.inner.stats()
        waiting = sum(stats.waiting_by_priority.values())
        per_request = self.limit.cost.value
        if per_request is None:
            return None
        return drain_estimate(waiting * per_request, self.limit.drain.current())

    def first_token(self, request: GenerationRequest, cost: float, ttft: float) -> None:
        self.limit.on_first_token(ttft, cost, self.inflight)

    def finished(self, request: GenerationRequest, ending: Ending) -> None:
        """A gated stream ended: give its cost back and learn from it."""
        inflight = self.inflight
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
        self.limit.on_finished(ending.cost, inflight, tpot, duration)

    def snapshot(self) -> dict[str, Any]:
        level = self._level()
        return {
            "inflight_kv_tokens": round(self.inflight, 1),
            "inflight_requests": {p.value: n for p, n in self.inflight_requests.items()},
            "limit_kv_tokens": round(self.limit.limit, 1),
            "class_limits_kv_tokens": {
                p.value: round(self.class_limit(p, level), 1) for p in Priority
            },
            "little_bound_kv_tokens": _round(self.limit.little_bound()),
            "drain_kv_tokens_per_second": _round(self.limit.drain.current()),
            "gradients": {"ttft": self.limit.ttft.gradient, "tpot": self.limit.tpot.gradient},
            "breaker": self.breaker.state,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
