"""The scheduler's protection of the most important class with work: the classes below it
prefill in small chunks and leave reserved slots free, and get the whole engine without it.

These drive the `Scheduler` alone (no model): a step is `schedule()` followed by what the
postprocessor does to progress, so each test reads as the batches the engine would run."""

from __future__ import annotations

from inference.backend import GenerationRequest, Priority
from inference.engine.block_manager import BlockManager
from inference.engine.detokenizer import IncrementalDetokenizer
from inference.engine.scheduler import ACTIVE_HOLD_S, ScheduledSeq, Scheduler
from inference.engine.sequence import Sequence
from inference.engine.tokenizer import ByteTokenizer
from tests.support.engine import prompt_of

P, S, B = Priority.PREMIUM, Priority.STANDARD, Priority.BATCH


def _seq(request_id: str, length: int, priority: Priority) -> Sequence:
    tokens = prompt_of(length, seed=len(request_id))
    request = GenerationRequest(request_id, tokens, priority=priority)
    return Sequence(request, IncrementalDetokenizer(ByteTokenizer(), tokens, ()), None)


def _scheduler(
    max_num_seqs: int = 16, budget: int = 2048, blocks: int = 512, clock: list[float] | None = None
) -> Scheduler:
    manager = BlockManager(blocks, 16, enable_prefix_caching=False)
    now = clock if clock is not None else [0.0]
    return Scheduler(manager, max_num_seqs, budget, clock=lambda: now[0])


def _step(scheduler: Scheduler) -> dict[str, int]:
    """One step: request id -> tokens computed; each sampled sequence gets one new token."""
    batch: list[ScheduledSeq] = scheduler.schedule()
    for item in batch:
        item.seq.num_computed_tokens += item.num_tokens
        if item.seq.num_computed_tokens == len(item.seq.token_ids):
            item.seq.token_ids.append(65)
    return {item.seq.request_id: item.num_tokens for item in batch}


def test_lower_prefill_is_chunked_while_premium_has_work() -> None:
    scheduler = _scheduler()
    share = scheduler.lower_prefill_tokens
    assert share == 64
    scheduler.add(_seq("p", 10, P))
    _step(scheduler)  # premium is running (decoding) from now on
    for name in ("s1", "s2", "b1"):
        scheduler.add(_seq(name, 200, S if name[0] == "s" else B))
    steps = [_step(scheduler) for _ in range(3)]
    for step in steps:
        assert step["p"] == 1
        assert sum(n for rid, n in step.items() if rid != "p") <= share
    assert steps[0] == {"p": 1, "s1": share}  # standard first, in chunks; batch after it
    premium = _seq("p2", 150, P)
    scheduler.add(premium)
    step = _step(scheduler)
    assert step["p2"] == 150  # premium's own prefill is never chunked,
    assert set(step) == {"p", "p2"}  # nor lengthened by a lower class's chunk
    step = _step(scheduler)  # premium decodes: the lower classes' chunks go on
    assert step["p2"] == 1 and sum(n for rid, n in step.items() if rid[0] != "p") == share


def test_a_class_alone_prefills_with_the_whole_budget() -> None:
    scheduler = _scheduler()
    for name in ("s1", "s2", "s3"):
        scheduler.add(_seq(name, 300, S))
    assert _step(scheduler) == {"s1": 300, "s2": 300, "s3": 300}
    scheduler.add(_seq("b1", 300, B))  # batch below standard: chunked while standard runs
    assert _step(scheduler) == {"s1": 1, "s2": 1, "s3": 1, "b1": 64}


def test_the_protection_outlasts_a_gap_in_premium_work_then_lapses() -> None:
    now = [100.0]
    scheduler = _scheduler(clock=now)
    premium = _seq("p", 10, P)
    scheduler.add(premium)
    _step(scheduler)
    scheduler.remove(premium)  # premium's work is done; the next premium request may be near
    now[0] += ACTIVE_HOLD_S - 1
    scheduler.add(_seq("s1", 200, S))
    assert _step(scheduler) == {"s1": 64}
    now[0] += 1.5  # no premium work for longer than the hold: standard gets the whole step
    assert _step(scheduler) == {"s1": 136}


def test_lower_classes_leave_reserved_slots_for_premium() -> None:
    scheduler = _scheduler(max_num_seqs=8)
    assert scheduler.lower_slots == 6
    scheduler.add(_seq("p0", 4, P))
    for i in range(10):
        scheduler.add(_seq(f"s{i}", 4, S))
    assert _step(scheduler) == {"p0": 4}  # premium's prefill step is its own
    _step(scheduler)
    assert len(scheduler.running) == 6  # premium and five standard: two slots stay free
    scheduler.add(_seq("p1", 4, P))
    step = _step(scheduler)
    assert "p1" in step and len(scheduler.running) == 7
    assert scheduler.preemptions == {P: 0, S: 0, B: 0}


def test_without_premium_the_lower_classes_use_every_slot() -> None:
    scheduler = _scheduler(max_num_seqs=8)
    for i in range(10):
        scheduler.add(_seq(f"s{i}", 4, S))
    _step(scheduler)
    assert len(scheduler.running) == 8
    scheduler.add(_seq("p", 4, P))  # full of standard: premium preempts one, as before
    assert "p" in _step(scheduler)
    assert scheduler.preemptions[S] == 1


def test_small_engines_reserve_nothing() -> None:
    assert _scheduler(max_num_seqs=1).lower_slots == 1
    assert _scheduler(max_num_seqs=3).lower_slots == 3
