"""The small parts on injected clocks: the breaker's states, the Retry-After advisor's growth
and bounds, the token bucket, Gradient2's arithmetic and the Little bound, and the ladder file."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from inference.admission.breaker import CircuitBreaker
from inference.admission.concurrency import AdaptiveLimit, Gradient
from inference.admission.levels import DEFAULT_LADDER, load_ladder
from inference.admission.rate_limit import TokenBucket
from inference.admission.retry_after import CEILING_S, MAX_S, Backlog, RetryAdvisor
from inference.backend import Priority
from tests.admission.doubles import FakeClock


def test_breaker_opens_at_half_failures_over_its_window_with_a_minimum() -> None:
    clock = FakeClock()
    b = CircuitBreaker(window=10, min_calls=6, failure_ratio=0.5, open_s=5, clock=clock)
    for failed in (True, True, True, False, False):
        b.record(failed)
    assert b.state == "closed"  # 3 of 5 failed, but fewer than the minimum
    b.record(False)
    assert b.state == "open"  # 3 of 6 = 50%
    assert b.allow() == 5
    clock.advance(5)
    assert b.state == "half_open"
    assert [b.allow() for _ in range(4)][:3] == [None, None, None]
    b.record(True)
    b.record(True)
    assert b.state == "open"  # the trials failed: open again
    clock.advance(5)
    for _ in range(3):
        assert b.allow() is None
    b.abandon()  # one trial was refused further on: it does not count
    assert b.allow() is None
    for _ in range(3):
        b.record(False)
    assert b.state == "closed"


def test_retry_after_grows_while_refusals_go_on_and_stays_bounded() -> None:
    clock = FakeClock()
    advisor = RetryAdvisor(clock, random.Random(1))
    waits = []
    for _ in range(120):
        waits.append(advisor.refused(Priority.BATCH))
        clock.advance(1)
    assert 0.8 <= waits[0] <= 1.2  # 1 s, +-20% jitter
    assert max(waits) <= CEILING_S * 1.2 <= MAX_S
    assert waits[-1] >= CEILING_S * 0.8  # 1 s -> 32 s as the streak lengthens
    assert sorted(waits[:8]) != waits[:8] or len(set(waits)) > 10  # jittered, not in step
    assert advisor.backoff(Priority.PREMIUM) == 1.0  # streaks are per class
    clock.advance(CEILING_S + 1)  # a whole backoff without a refusal: the streak starts over
    assert advisor.refused(Priority.BATCH) <= 1.2
    assert advisor.refused(Priority.STANDARD, estimate=500) == MAX_S  # never past 60 s


def test_token_bucket() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [None, None, None]
    assert bucket.take() == pytest.approx(0.5)
    clock.advance(0.5)
    assert bucket.take() is None


def test_gradient2_clamps_between_half_and_one() -> None:
    g = Gradient(tolerance=1.5)
    for _ in range(50):
        g.observe(0.1)
    assert g.gradient == 1.0
    g.observe(0.14)
    assert g.gradient == 1.0  # within 150%
    for _ in range(30):
        g.observe(2.0)
    assert g.gradient == 0.5  # far past it: the floor


def answer(
    limit: AdaptiveLimit,
    cost: float,
    inflight: float,
    *,
    ttft: float,
    tpot: float,
    duration: float,
) -> None:
    """One request's first token, then its end."""
    limit.on_first_token(ttft, cost, inflight)
    limit.on_finished(cost, inflight, tpot, duration)


def test_the_limit_shrinks_on_slow_answers_grows_back_and_stays_in_bounds() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(initial=8000, minimum=1000, maximum=8000, clock=clock)
    # 10 answers a second of 200 tokens, 3 s each: 6000 tokens in flight (Little's law holds).
    for _ in range(30):  # busy and fast: stays at the ceiling
        clock.advance(0.1)
        answer(limit, 200, 6000, ttft=0.05, tpot=0.01, duration=3.0)
    assert limit.limit == 8000
    for _ in range(60):  # slow: down to the minimum, not below
        clock.advance(0.1)
        answer(limit, 200, 6000, ttft=1.0, tpot=0.05, duration=6.0)
    assert limit.limit == 1000
    for _ in range(200):  # fast again and busy: grows back
        clock.advance(0.1)
        answer(limit, 200, limit.limit, ttft=0.05, tpot=0.01, duration=3.0)
    assert limit.limit > 2000


def test_an_idle_limit_does_not_grow() -> None:
    limit = AdaptiveLimit(initial=2000, minimum=1000, maximum=8000, clock=FakeClock())
    for _ in range(100):
        answer(limit, 200, 0, ttft=0.05, tpot=0.01, duration=0.4)
    assert limit.limit == 2000


def test_little_bound_is_peak_drain_times_tolerated_residence() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(initial=8000, minimum=100, maximum=1e9, tolerance=1.5, clock=clock)
    for _ in range(50):
        clock.advance(0.25)  # 4 requests of 100 tokens a second, busy
        answer(limit, 100, 8000, ttft=0.05, tpot=0.01, duration=0.5)
    assert limit.drain.peak == pytest.approx(400, rel=0.05)
    assert limit.little_bound() == pytest.approx(400 * 1.5 * 0.5, rel=0.05)
    assert limit.limit <= limit.little_bound() + 100  # held within the bound


def test_a_ladder_from_json(tmp_path: Path) -> None:
    path = tmp_path / "ladder.json"
    path.write_text(
        json.dumps(
            {
                "levels": [{"name": "normal"}, {"name": "no batch", "shed": ["batch"]}],
                "service": {"batch": {"share": 0.3, "timeout_s": 30}},
                "actions": {"cap_tokens": 1, "shed_low_priority": 1, "tighten_concurrency": 1},
            }
        )
    )
    ladder = load_ladder(path)
    assert ladder.top == 1 and ladder.level(1).shed == {Priority.BATCH}
    assert ladder.service[Priority.BATCH].timeout_s == 30
    assert ladder.service[Priority.PREMIUM] == DEFAULT_LADDER.service[Priority.PREMIUM]
    path.write_text(json.dumps({"levels": [{"name": "x"}], "actions": {"cap_tokens": 2}}))
    with pytest.raises(ValueError, match="does not exist"):
        load_ladder(path)
    path.write_text(json.dumps({"level": []}))
    with pytest.raises(ValueError, match="unknown keys"):
        load_ladder(path)


def test_refused_work_queues_virtually_so_retries_come_back_spread_out() -> None:
    clock = FakeClock()
    backlog = Backlog(clock)
    assert [backlog.join("standard", 50, 100.0) for _ in range(3)] == [0, 50, 100]
    assert backlog.join("batch", 50, 100.0) == 0  # per class
    clock.advance(1.0)  # 100 tokens drained
    assert backlog.join("standard", 50, 100.0) == 50
    clock.advance(CEILING_S + 1)
    assert backlog.join("standard", 50, None) == 0  # rate unknown: forgotten after a while
