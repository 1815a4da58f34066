"""Preemption by recomputation when the KV cache is too small for everything running."""

from __future__ import annotations

from inference.backend import Priority
from tests.engine.conftest import EngineFactory, make_request, prompt_of, run_all

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

    assert stats.preemptions_by_priority[Priority.BATCH] > 0
    assert stats.preemptions_by_priority[Priority.PREMIUM] == 0
    batch_results = [r for r, p in zip(preempted_run, PRIORITIES, strict=True) if p == "batch"]
    assert any(r.final.times.preempted for r in batch_results)
    assert all(r.final.finish_reason == "length" for r in preempted_run)
    assert stats.kv_blocks_used == 0 and stats.running == 0

    large = await make_engine(dtype="float64")
    reference = await run_all(large, _requests())
    assert large.stats().preemptions_by_priority == {p: 0 for p in Priority}
    assert [r.tokens for r in preempted_run] == [r.tokens for r in reference]


async def test_preemption_with_prefix_cache_keeps_output(make_engine: EngineFactory) -> None:
    """Re-admission after preemption may hit the sequence's own cached blocks."""
    small = await make_engine(dtype="float64", num_kv_blocks=12)
    preempted_run = await run_all(small, _requests())
    assert sum(small.stats().preemptions_by_priority.values()) > 0
    large = await make_engine(dtype="float64", enable_prefix_caching=False)
    reference = await run_all(large, _requests())
    assert [r.tokens for r in preempted_run] == [r.tokens for r in reference]
    assert small.stats().kv_blocks_used == 0
