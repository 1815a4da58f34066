"""Preemption by recomputation when the KV cache is too small for everything running."""

from __future__ import annotations

import asyncio

import pytest

from inference.backend import Priority
from tests.support.engine import EngineFactory, collect, make_request, prompt_of, run_all

PRIORITIES = [Priority.PREMIUM, Priority.STANDARD, Priority.BATCH] * 2


def _requests() -> list:
    return [
        make_request(f"r{i}", prompt_of(20 + 3 * i, seed=i), 40, priority=p)
        for i, p in enumerate(PRIORITIES)
    ]


async def test_lowest_priority_is_preempted_and_output_unchanged(
    make_engine: EngineFactory,
) -> None:
    # Six requests need ~4-5 blocks each at the end; 12 blocks hold fewer than three of them.
    small = await make_engine(dtype="float64", num_kv_blocks=12, enable_prefix_caching=False)
    preempted_run = await run_all(small, _requests())
    stats = small.stats()

    assert stats.kv.preemptions_by_priority[Priority.BATCH] > 0
    assert stats.kv.preemptions_by_priority[Priority.PREMIUM] == 0
    batch_results = [r for r, p in zip(preempted_run, PRIORITIES, strict=True) if p == "batch"]
    assert any(r.final.times.preempted for r in batch_results)
    assert all(r.final.finish_reason == "length" for r in preempted_run)
    assert stats.kv.blocks_used == 0 and stats.running == 0

    large = await make_engine(dtype="float64")
    reference = await run_all(large, _requests())
    assert large.stats().kv.preemptions_by_priority == {p: 0 for p in Priority}
    assert [r.tokens for r in preempted_run] == [r.tokens for r in reference]


async def test_preemption_with_prefix_cache_keeps_output(make_engine: EngineFactory) -> None:
    """Re-admission after preemption may hit the sequence's own cached blocks."""
    small = await make_engine(dtype="float64", num_kv_blocks=12)
    preempted_run = await run_all(small, _requests())
    assert sum(small.stats().kv.preemptions_by_priority.values()) > 0
    large = await make_engine(dtype="float64", enable_prefix_caching=False)
    reference = await run_all(large, _requests())
    assert [r.tokens for r in preempted_run] == [r.tokens for r in reference]
    assert small.stats().kv.blocks_used == 0


async def _first_output(stream) -> list[int]:  # type: ignore[no-untyped-def]
    out = await asyncio.wait_for(stream.__anext__(), 30)
    assert not out.finished
    return out.token_ids


@pytest.mark.parametrize("limit", ["blocks", "slots"])
async def test_waiting_premium_preempts_running_batch(
    make_engine: EngineFactory, limit: str
) -> None:
    """No room for a premium arrival (KV blocks, or max_num_seqs): a batch sequence yields."""
    if limit == "blocks":  # the batch request holds 7 to 10 of the 10 blocks; premium needs 4
        config, batch_prompt = {"num_kv_blocks": 10}, prompt_of(100, seed=1)
    else:
        config, batch_prompt = {"max_num_seqs": 1}, prompt_of(30, seed=1)
    premium_prompt = prompt_of(50, seed=2)
    engine = await make_engine(dtype="float64", enable_prefix_caching=False, **config)
    batch = engine.generate(make_request("batch", batch_prompt, 60, priority=Priority.BATCH))
    first = await _first_output(batch)
    premium = engine.generate(make_request("prem", premium_prompt, 10, priority=Priority.PREMIUM))
    prem, rest = await asyncio.gather(collect(premium), collect(batch))

    stats = engine.stats()
    assert stats.kv.preemptions_by_priority[Priority.BATCH] >= 1
    assert stats.kv.preemptions_by_priority[Priority.PREMIUM] == 0
    assert prem.final.times.finished < rest.final.times.finished  # type: ignore[operator]
    assert rest.final.times.preempted
    assert stats.kv.blocks_used == 0

    large = await make_engine(dtype="float64")
    ref_batch, ref_prem = await run_all(
        large,
        [make_request("b", batch_prompt, 60), make_request("p", premium_prompt, 10)],
    )
    assert prem.tokens == ref_prem.tokens
    assert first + rest.tokens == ref_batch.tokens
