"""Priority order with a backlog, cancellation, and the bounded waiting queue."""

from __future__ import annotations

import asyncio

import pytest

from inference.backend import Priority, QueueFullError
from tests.support.engine import EngineFactory, collect, make_request, prompt_of, run_all


async def test_premium_is_scheduled_before_earlier_batch(make_engine: EngineFactory) -> None:
    engine = await make_engine(max_num_seqs=1)
    blocker = engine.generate(make_request("blocker", prompt_of(10), 120))
    first = await asyncio.wait_for(blocker.__anext__(), 30)  # now running, holding the slot
    assert not first.finished
    batch = [
        engine.generate(make_request(f"batch{i}", prompt_of(10, i), 4, priority=Priority.BATCH))
        for i in range(3)
    ]
    standard = engine.generate(make_request("std", prompt_of(10, 7), 4))
    premium = engine.generate(make_request("prem", prompt_of(10, 8), 4, priority=Priority.PREMIUM))
    waiting = engine.stats().waiting_by_priority
    assert waiting == {Priority.PREMIUM: 1, Priority.STANDARD: 1, Priority.BATCH: 3}

    results = await asyncio.gather(*(collect(s) for s in [blocker, premium, standard, *batch]))
    _, prem, std, *batches = (r.final.times for r in results)
    assert prem.first_scheduled is not None and std.first_scheduled is not None
    assert prem.first_scheduled < std.first_scheduled
    assert all(std.first_scheduled < b.first_scheduled for b in batches)  # type: ignore[operator]
    order = sorted(batches, key=lambda t: t.first_scheduled)  # type: ignore[arg-type,return-value]
    assert order == batches  # FIFO within a class
    assert prem.arrival > max(b.arrival for b in batches)


async def test_aclose_frees_blocks_at_once(make_engine: EngineFactory) -> None:
    engine = await make_engine(enable_prefix_caching=False)
    stream = engine.generate(make_request("long", prompt_of(40), 500))
    for _ in range(3):
        await asyncio.wait_for(stream.__anext__(), 30)
    assert engine.stats().kv.blocks_used > 0
    await stream.aclose()
    stats = engine.stats()  # no await in between: freed by the call itself
    assert stats.kv.blocks_used == 0 and stats.running == 0
    (after,) = await run_all(engine, [make_request("next", prompt_of(12), 5)])
    assert len(after.tokens) == 5


async def test_cancel_by_id_ends_the_stream(make_engine: EngineFactory) -> None:
    engine = await make_engine()
    stream = engine.generate(make_request("victim", prompt_of(30), 500))
    await asyncio.wait_for(stream.__anext__(), 30)
    await engine.cancel("victim")
    assert engine.stats().kv.blocks_used == 0
    rest = await collect(stream)
    assert rest.final.finish_reason == "cancelled"
    assert rest.final.times.finished is not None
    await engine.cancel("victim")  # unknown or finished ids are ignored


async def test_cancel_waiting_request(make_engine: EngineFactory) -> None:
    engine = await make_engine(start=False)
    stream = engine.generate(make_request("queued", prompt_of(10), 5))
    assert engine.stats().waiting_by_priority[Priority.STANDARD] == 1
    await stream.aclose()
    assert engine.stats().waiting_by_priority[Priority.STANDARD] == 0


async def test_full_queue_rejects_then_drains(make_engine: EngineFactory) -> None:
    engine = await make_engine(start=False, max_waiting=2)
    streams = [engine.generate(make_request(f"q{i}", prompt_of(10, i), 3)) for i in range(2)]
    await asyncio.sleep(0.05)
    stats = engine.stats()
    assert stats.oldest_wait_seconds_by_priority[Priority.STANDARD] > 0.04
    with pytest.raises(QueueFullError, match="waiting queue is full \\(2 requests\\)"):
        engine.generate(make_request("q2", prompt_of(10), 3))
    await engine.start()
    results = await asyncio.gather(*(collect(s) for s in streams))
    assert [len(r.tokens) for r in results] == [3, 3]
    assert engine.ready()
