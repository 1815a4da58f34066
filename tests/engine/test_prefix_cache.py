"""Prefix caching: shared full blocks are reused, counted in tokens, and change nothing."""

from __future__ import annotations

from tests.support.engine import EngineFactory, make_request, prompt_of, run_all

BLOCK = 16


async def test_shared_three_block_prefix_is_reused(make_engine: EngineFactory) -> None:
    engine = await make_engine(dtype="float64", block_size=BLOCK)
    shared = prompt_of(3 * BLOCK, seed=1)
    first = shared + prompt_of(20, seed=2)[1:]
    second = shared + prompt_of(25, seed=3)[1:]

    await run_all(engine, [make_request("first", first, 8)])
    before = engine.stats()
    assert before.kv.blocks_used == 0 and before.kv.blocks_cached > 0
    (cached,) = await run_all(engine, [make_request("second", second, 8)])
    after = engine.stats()

    assert after.kv.prefix_cache_hits_tokens - before.kv.prefix_cache_hits_tokens == 3 * BLOCK
    queried = after.kv.prefix_cache_queries_tokens - before.kv.prefix_cache_queries_tokens
    assert queried == len(second)

    plain = await make_engine(dtype="float64", block_size=BLOCK, enable_prefix_caching=False)
    (uncached,) = await run_all(plain, [make_request("second", second, 8)])
    assert cached.tokens == uncached.tokens
    assert plain.stats().kv.prefix_cache_hits_tokens == 0
    assert plain.stats().kv.blocks_cached == 0


async def test_cached_blocks_are_evicted_when_space_runs_out(make_engine: EngineFactory) -> None:
    """A cache full of freed prefixes still serves new prompts (LRU eviction)."""
    engine = await make_engine(num_kv_blocks=8, block_size=BLOCK)
    for i in range(4):  # each leaves ~4 full hashed blocks behind
        await run_all(engine, [make_request(f"r{i}", prompt_of(60, seed=10 + i), 8)])
    stats = engine.stats()
    assert stats.kv.blocks_used == 0
    assert stats.kv.blocks_cached + stats.kv.blocks_free == stats.kv.blocks_total == 8
    assert stats.kv.blocks_cached > 0
