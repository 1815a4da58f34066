"""The admission gate on a scripted backend: what each level does to each priority, costs in
KV tokens, the adaptive per-priority limits, the breaker, deadlines, and honest refusals."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from inference.admission.breaker import CircuitBreaker
from inference.admission.concurrency import AdaptiveLimit
from inference.admission.gate import AdmissionGate
from inference.admission.levels import DEFAULT_LADDER, Ladder, ServiceLevel
from inference.admission.refusals import (
    CircuitOpenError,
    ConcurrencyLimitError,
    DeadlineExceededError,
    ShedError,
)
from inference.admission.retry_after import MAX_S, RetryAdvisor
from inference.backend import Backend, EngineError, Priority, QueueFullError
from tests.admission.doubles import ScriptedBackend, request

P, S, B = Priority.PREMIUM, Priority.STANDARD, Priority.BATCH
CEILING = 8192.0


class Level:
    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> int:
        return self.value


def gate(
    backend: ScriptedBackend, level: Level | None = None, ladder: Ladder = DEFAULT_LADDER
) -> AdmissionGate:
    return AdmissionGate(
        backend,
        ladder=ladder,
        level=level or Level(),
        limits={
            p: AdaptiveLimit(
                initial=CEILING * s.share,
                minimum=CEILING * s.min_share,
                maximum=CEILING * s.share,
            )
            for p, s in ladder.service.items()
        },  # fmt: skip
        breaker=CircuitBreaker(window=10, min_calls=4, open_s=5.0),
        advisor=RetryAdvisor(),
        relief=lambda: 30.0,
    )


def test_the_gate_is_a_backend() -> None:
    g = gate(ScriptedBackend())
    assert isinstance(g, Backend)
    assert g.model_name == "scripted" and g.max_model_len == 4096
    assert g.kv_tokens == 4096  # anything else is the inner backend's


@pytest.mark.parametrize("number", range(4))
async def test_each_level_applies_its_actions(number: int) -> None:
    """Shed classes are refused at once with a reason and a wait; the rest are admitted with
    max_tokens capped as the level says."""
    backend, level = ScriptedBackend(), Level()
    level.value = number
    g = gate(backend, level)
    rung = DEFAULT_LADDER.level(number)
    for i, priority in enumerate(Priority):
        asked = request(i, priority, prompt=10, max_tokens=1000)
        if priority in rung.shed:
            with pytest.raises(ShedError) as refused:
                g.generate(asked)
            assert refused.value.status == 503 and refused.value.reason == "shed"
            assert refused.value.retry_after is not None
            assert 30 * 0.8 <= refused.value.retry_after <= MAX_S  # the cooldown left, jittered
            continue
        g.generate(asked)
        sent = backend.streams[-1].request
        assert sent.sampling.max_tokens == (rung.cap(priority) or 1000), priority
    assert number < 3 or [s.request.priority for s in backend.streams] == [P]
    concurrency = DEFAULT_LADDER.level(number).concurrency
    assert g.class_limit(P) == CEILING * concurrency


async def test_cost_is_counted_in_kv_tokens_and_lower_classes_leave_room() -> None:
    backend = ScriptedBackend()
    g = gate(backend)
    first = g.generate(request(1, S, prompt=3000, max_tokens=1000))  # alone: admitted anyway
    assert g.inflight == 4000
    g.generate(request(2, S, prompt=1000, max_tokens=1000))  # 6000 <= 0.75 x 8192
    with pytest.raises(ConcurrencyLimitError) as refused:
        g.generate(request(3, S, prompt=100, max_tokens=200))  # 6300 > 6144
    assert refused.value.status == 503 and refused.value.reason == "concurrency_limit"
    assert refused.value.retry_after is not None and 0 < refused.value.retry_after <= MAX_S
    with pytest.raises(ConcurrencyLimitError):
        g.generate(request(4, B, prompt=10, max_tokens=10))  # batch: everything counts
    g.generate(request(5, P, prompt=1000, max_tokens=1000))  # premium: only premium counts
    assert g.snapshot()["inflight_requests"] == {"premium": 1, "standard": 2, "batch": 0}
    backend.streams[0].finish()
    async for _ in first:
        pass
    assert g.inflight == 4000  # the first one's 4000 tokens are back
    g.generate(request(6, S, prompt=100, max_tokens=200))


async def _slow_batch_answers(backend: ScriptedBackend, g: AdmissionGate, waited: float) -> None:
    """40 batch requests in flight at once, then 3 standard ones waiting behind the engine for
    `waited` seconds; the last 20 batch answers come 50x slower than the first."""
    streams = [g.generate(request(i, B, prompt=50, max_tokens=50)) for i in range(40)]
    backend.waiting[S], backend.oldest_wait = 3, waited
    for i, stream in enumerate(streams):
        backend.streams[i].finish(ttft=0.01 if i < 20 else 0.5, tpot=0.01)
        async for _ in stream:
            pass
    assert g.inflight == 0 and g.snapshot()["inflight_requests"]["batch"] == 0


async def test_finishing_gives_the_cost_back_and_slow_answers_lower_that_class_limit() -> None:
    backend = ScriptedBackend()
    g = gate(backend)
    await _slow_batch_answers(backend, g, waited=2.0)  # work queues behind the engine
    batch = g.limits[B]
    assert batch.limit < CEILING * 0.5  # TTFT 50x its long average: the gradient cut it
    assert batch.ttft.gradient == 0.5  # clamped at Gradient2's floor
    assert g.class_limit(B) >= CEILING * 0.025  # never below its floor
    assert g.class_limit(P) == CEILING and g.class_limit(S) == CEILING * 0.75  # their own


@pytest.mark.parametrize("oldest_wait", [0.0, 0.3])
async def test_slow_answers_with_nothing_queued_leave_the_limit(oldest_wait: float) -> None:
    """A fuller batch slows first tokens without any queueing: with nothing of the class's
    rank waiting past the congestion wait, the same slow answers do not cut the limit."""
    backend = ScriptedBackend()
    g = gate(backend)
    await _slow_batch_answers(backend, g, oldest_wait)  # at most the step in progress
    assert g.limits[B].ttft.gradient == 0.5  # the latency signal saw the slowdown ...
    assert g.limits[B].limit == CEILING * 0.5  # ... and the limit held


async def test_engine_failures_open_the_breaker_then_trials_close_it() -> None:
    clock = [0.0]
    backend = ScriptedBackend()
    g = gate(backend)
    g.breaker = CircuitBreaker(window=10, min_calls=4, open_s=5.0, clock=lambda: clock[0])
    for i in range(4):
        stream = g.generate(request(i, S, prompt=5, max_tokens=5))
        backend.streams[-1].finish(reason="error", error="model raised")
        async for _ in stream:
            pass
    with pytest.raises(CircuitOpenError) as refused:
        g.generate(request(9, P, prompt=5, max_tokens=5))
    assert refused.value.status == 503 and refused.value.reason == "circuit_open"
    assert refused.value.retry_after is not None
    clock[0] += 5.0  # half-open: three trials go through
    trials = [g.generate(request(10 + i, S, prompt=5, max_tokens=5)) for i in range(3)]
    with pytest.raises(CircuitOpenError):
        g.generate(request(20, S, prompt=5, max_tokens=5))
    for i, trial in enumerate(trials):
        backend.streams[-3 + i].finish()
        async for _ in trial:
            pass
    assert g.breaker.state == "closed"
    g.generate(request(21, S, prompt=5, max_tokens=5))


async def test_an_engine_error_at_submit_counts_as_a_failure() -> None:
    backend = ScriptedBackend()

    def broken(_: object) -> None:
        raise EngineError("the engine is not running")

    backend.refuse = broken
    g = gate(backend)
    for i in range(4):
        with pytest.raises(EngineError):
            g.generate(request(i, S))
    assert g.breaker.state == "open"


async def test_the_engine_queue_refusal_passes_through_with_an_estimated_wait() -> None:
    backend = ScriptedBackend()

    def full(_: object) -> None:
        raise QueueFullError("the waiting queue is full (64 requests); retry later")

    backend.refuse = full
    g = gate(backend)
    with pytest.raises(QueueFullError) as refused:
        g.generate(request(1, S))
    assert refused.value.reason == "queue_full"
    assert refused.value.retry_after is not None and 0.8 <= refused.value.retry_after <= MAX_S
    assert g.breaker.state == "closed" and g.inflight == 0


async def test_past_its_class_deadline_a_request_is_cancelled_and_refused() -> None:
    fast = dataclasses.replace(DEFAULT_LADDER.service[S], timeout_s=0.05)
    ladder = dataclasses.replace(
        DEFAULT_LADDER, service=MappingProxyType({**DEFAULT_LADDER.service, S: fast})
    )
    backend = ScriptedBackend()
    g = gate(backend, ladder=ladder)
    stream = g.generate(request(1, S))
    with pytest.raises(DeadlineExceededError) as cut:
        async for _ in stream:
            pass  # nothing arrives until the deadline cancels it in the backend
    assert backend.cancelled == ["r1"]  # the backend frees its blocks
    assert cut.value.reason == "deadline_exceeded" and cut.value.status == 503
    assert "0.05 s deadline" in str(cut.value) and cut.value.retry_after is not None
    assert g.inflight == 0 and g.breaker.state == "closed"


async def test_every_decision_lands_on_the_request_span() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("test")
    level = Level()
    level.value = 1
    g = gate(ScriptedBackend(), level)
    with tracer.start_as_current_span("admitted"):
        g.generate(request(1, S, prompt=5, max_tokens=1000))
    with tracer.start_as_current_span("shed"), pytest.raises(ShedError):
        g.generate(request(2, B))
    attributes = {s.name: dict(s.attributes or {}) for s in spans.get_finished_spans()}
    assert attributes["admitted"] == {
        "inferwatch.degradation_level": 1,
        "inferwatch.admission.decision": "capped",
        "inferwatch.admission.max_tokens": 256,
    }
    assert attributes["shed"]["inferwatch.admission.decision"] == "shed"


def test_ladders_are_validated() -> None:
    with pytest.raises(ValueError, match="every priority"):
        Ladder(DEFAULT_LADDER.levels, MappingProxyType({P: ServiceLevel(1.0, 1.0)}), {})
    with pytest.raises(ValueError, match="does not exist"):
        Ladder(DEFAULT_LADDER.levels, DEFAULT_LADDER.service, {"cap_tokens": 9})


async def test_when_premium_slows_down_the_classes_below_yield_too() -> None:
    """Batch may be starved of samples of its own (it waits behind everyone): it follows the
    smallest gradient of the classes above it, so it still hears that the service is slow."""
    backend = ScriptedBackend()
    g = gate(backend)
    g.generate(request(0, B, prompt=2000, max_tokens=1000))  # batch in flight, never answering
    g.generate(request(1, S, prompt=3000, max_tokens=1000))
    streams = [g.generate(request(10 + i, P, prompt=50, max_tokens=50)) for i in range(40)]
    backend.waiting[P], backend.oldest_wait = 1, 2.0  # premium itself queues
    for i, stream in enumerate(streams):
        backend.streams[2 + i].finish(ttft=0.01 if i < 20 else 0.5, tpot=0.01)
        async for _ in stream:
            pass
    assert g.limits[B].limit < CEILING * 0.5 and g.limits[S].limit < CEILING * 0.75
    assert g.limits[P].ttft.gradient == 0.5


async def test_a_backlog_in_the_engine_queue_refuses_at_once_without_any_latency_sample() -> None:
    backend = ScriptedBackend()
    g = gate(backend)
    backend.waiting = {P: 0, S: 3, B: 0}
    backend.oldest_wait = 0.01  # a burst between two engine steps: not a backlog
    g.generate(request(1, B, prompt=5, max_tokens=5))
    backend.oldest_wait = 0.5  # three have waited half a second
    with pytest.raises(ConcurrencyLimitError, match="3 requests of batch priority or above"):
        g.generate(request(2, B, prompt=5, max_tokens=5))  # batch allows 2 ahead in the queue
    g.generate(request(3, S, prompt=5, max_tokens=5))  # standard allows 4
    g.generate(request(4, P, prompt=5, max_tokens=5))  # premium counts only premium
    backend.waiting = {P: 16, S: 0, B: 0}
    with pytest.raises(ConcurrencyLimitError) as refused:
        g.generate(request(5, P, prompt=5, max_tokens=5))
    assert refused.value.retry_after is not None
