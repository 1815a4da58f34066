"""The engine thread: failures stay contained, stats and step listeners, stop().

Faults are injected by wrapping the engine's own runner/scheduler methods: a real model does
not fail on demand, and these wrappers are the only test doubles here.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from inference.backend import Backend, EngineError, Priority, StepStats
from tests.support.engine import EngineFactory, collect, make_request, prompt_of

POISON = 7  # a byte no other prompt here contains


async def test_model_error_fails_only_that_step(make_engine: EngineFactory) -> None:
    engine = await make_engine(start=False, max_num_seqs=1)
    execute = engine._runner.execute

    def failing_execute(prepared):  # type: ignore[no-untyped-def]
        if POISON in prepared.input_ids.tolist():
            raise RuntimeError("injected device fault")
        return execute(prepared)

    engine._runner.execute = failing_execute  # type: ignore[method-assign]
    poisoned = engine.generate(make_request("bad", [256, POISON, 65], 4))
    healthy = engine.generate(make_request("good", prompt_of(10), 6))  # waits: max_num_seqs=1
    await engine.start()
    bad, good = await asyncio.gather(collect(poisoned), collect(healthy))

    assert bad.final.finish_reason == "error"
    assert bad.final.error == "model error: RuntimeError: injected device fault"
    assert good.final.finish_reason == "length" and len(good.tokens) == 6
    assert engine.ready()
    assert engine.stats().kv.blocks_used == 0


async def test_dead_loop_is_not_ready_and_fails_requests(make_engine: EngineFactory) -> None:
    engine = await make_engine(start=False)

    def broken_schedule():  # type: ignore[no-untyped-def]
        raise RuntimeError("scheduler bug")

    engine._scheduler.schedule = broken_schedule  # type: ignore[method-assign]
    stream = engine.generate(make_request("r", prompt_of(10), 4))
    await engine.start()
    result = await collect(stream)
    assert result.final.finish_reason == "error" and result.final.error == "engine loop died"
    assert not engine.ready()
    assert not engine.stats().engine_alive
    with pytest.raises(EngineError, match="not running"):
        engine.generate(make_request("r2", prompt_of(10), 4))


async def test_stats_and_step_listeners(make_engine: EngineFactory) -> None:
    engine = await make_engine(start=False)
    assert isinstance(engine, Backend)
    steps: list[StepStats] = []
    engine.add_step_listener(steps.append)
    engine.add_step_listener(lambda s: 1 / 0)  # a broken listener must not stop the engine
    assert not engine.ready()
    scraped = []
    stop = threading.Event()

    def scrape() -> None:  # a metrics scrape from another thread, while steps run
        while not stop.wait(0.002):
            scraped.append(engine.stats())

    scraper = threading.Thread(target=scrape)
    scraper.start()
    await engine.start()
    try:
        requests = [make_request(f"r{i}", prompt_of(20 + i, i), 60) for i in range(4)]
        requests.append(make_request("late", prompt_of(15, 9), 10, priority=Priority.BATCH))
        streams = [engine.generate(r) for r in requests[:4]]
        await asyncio.wait_for(streams[0].__anext__(), 30)
        streams.append(engine.generate(requests[4]))  # joins the running batch: a mixed step
        await asyncio.gather(*(collect(s) for s in streams))
    finally:
        stop.set()
        scraper.join(10)
    assert engine.ready()
    phases = {s.phase for s in steps}
    assert phases == {"prefill", "decode", "mixed"}
    assert sum(s.num_tokens for s in steps) == sum(20 + i for i in range(4)) + 15 + 4 * 59 + 9
    assert max(s.batch_size for s in steps) == 5
    assert all(s.duration_seconds > 0 for s in steps)
    assert max(s.running for s in scraped) > 0
    stats = engine.stats()
    assert stats.steps_total == len(steps)
    assert (stats.kv.blocks_used, stats.running, stats.kv.blocks_total) == (0, 0, 512)
    assert stats.kv.blocks_free + stats.kv.blocks_cached == 512
    assert (stats.kv.block_size, stats.kv.dtype, stats.kv.device) == (16, "float32", "cpu")
    assert stats.waiting_by_priority == dict.fromkeys(Priority, 0)


async def test_stop_fails_unfinished_requests(make_engine: EngineFactory) -> None:
    engine = await make_engine()
    stream = engine.generate(make_request("long", prompt_of(10), 1000))
    await asyncio.wait_for(stream.__anext__(), 30)
    await asyncio.wait_for(engine.stop(), 30)
    result = await collect(stream)
    assert result.final.finish_reason == "error" and result.final.error == "engine stopped"
    assert not engine.ready()
    assert engine._thread is not None and not engine._thread.is_alive()  # joined
    assert engine.stats().kv.blocks_used == 0
