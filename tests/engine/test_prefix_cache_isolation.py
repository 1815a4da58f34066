"""The prefix cache leaks nothing it need not (issue 13, item 7): block keys are a keyed hash
no one outside the process can compute, a hit is checked against the block's contents, and
with `prefix_cache_scope="tenant"` no tenant hits another's blocks."""

from __future__ import annotations

import dataclasses

import pytest

from inference.backend import GenerationRequest
from inference.engine import EngineConfig, block_manager
from inference.engine.block_manager import BlockManager
from inference.engine.detokenizer import IncrementalDetokenizer
from inference.engine.sequence import Sequence
from inference.engine.tokenizer import ByteTokenizer
from tests.support.engine import EngineFactory, make_request, prompt_of, run_all

BS = 4
TOKENS = [1, 2, 3, 4, 5, 6, 7, 8, 9]  # two full blocks and one computed token


def _run(bm: BlockManager, tokens: list[int], tenant: str | None = None) -> Sequence:
    """Admit, allocate and 'compute' the whole sequence, as a prefill step would."""
    request = GenerationRequest("r", tokens, tenant=tenant)
    seq = Sequence(request, IncrementalDetokenizer(ByteTokenizer(), tokens, ()), None)
    bm.admit(seq, bm.match_prefix(tokens, tenant))
    bm.grow(seq, len(tokens))
    seq.num_computed_tokens = len(tokens)
    bm.commit_full_blocks(seq)
    return seq


def test_block_keys_are_keyed_per_manager_and_not_pythons_hash() -> None:
    first = _run(BlockManager(8, BS), TOKENS).block_hashes
    second = _run(BlockManager(8, BS), TOKENS).block_hashes
    assert len(first) == 2
    assert first[0] != second[0] and first[1] != second[1]  # a fresh secret key each
    assert first[0] != hash((None, tuple(TOKENS[:BS])))
    key = b"k" * 32  # the same key gives the same keys: hits work within one cache
    assert (
        _run(BlockManager(8, BS, key=key), TOKENS).block_hashes
        == _run(BlockManager(8, BS, key=key), TOKENS).block_hashes
    )


def test_a_key_match_that_holds_other_tokens_is_a_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(block_manager, "block_hash", lambda *args: b"every block collides")
    bm = BlockManager(8, BS)
    bm.free(_run(bm, TOKENS))
    assert bm.match_prefix([9, 9, 9, 9, 0]) == []
    assert len(bm.match_prefix(TOKENS)) == 1  # only the first block got the colliding key


def test_a_key_match_under_another_parent_is_a_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    """Equal tokens at another place in the prompt hold other K/V: the parent is checked."""
    monkeypatch.setattr(block_manager, "block_hash", lambda *args: repr(tuple(args[-1])).encode())
    bm = BlockManager(8, BS)
    bm.free(_run(bm, TOKENS))
    assert bm.match_prefix([5, 6, 7, 8, 0]) == []  # TOKENS' second block, as a first block
    assert len(bm.match_prefix(TOKENS)) == 2


def test_tenant_scope_shares_blocks_only_within_a_tenant() -> None:
    scoped = BlockManager(16, BS, scope="tenant")
    scoped.free(_run(scoped, TOKENS, tenant="acme"))
    assert len(scoped.match_prefix(TOKENS, "acme")) == 2
    assert scoped.match_prefix(TOKENS, "globex") == []
    assert scoped.match_prefix(TOKENS) == []  # no tenant is a scope of its own
    scoped.free(_run(scoped, TOKENS))
    assert len(scoped.match_prefix(TOKENS)) == 2

    shared = BlockManager(16, BS)  # "global", the default: everyone shares
    shared.free(_run(shared, TOKENS, tenant="acme"))
    assert len(shared.match_prefix(TOKENS, "globex")) == 2


def test_unknown_scope_is_refused() -> None:
    with pytest.raises(ValueError, match="prefix cache scope"):
        BlockManager(4, BS, scope="nobody")
    with pytest.raises(ValueError, match="prefix_cache_scope must be one of global, tenant"):
        EngineConfig(prefix_cache_scope="nobody")


def _for(tenant: str | None, request_id: str, prompt: list[int]) -> GenerationRequest:
    return dataclasses.replace(make_request(request_id, prompt, 6), tenant=tenant)


@pytest.mark.parametrize("scope", ["tenant", "global"])
async def test_engine_hits_across_tenants_only_in_the_global_scope(
    make_engine: EngineFactory, scope: str
) -> None:
    block = 16
    engine = await make_engine(dtype="float64", block_size=block, prefix_cache_scope=scope)
    shared = prompt_of(3 * block, seed=1)
    prompt = shared + prompt_of(10, seed=2)[1:]

    def hits() -> int:
        return engine.stats().kv.prefix_cache_hits_tokens

    await run_all(engine, [_for("acme", "a1", shared + prompt_of(20, seed=3)[1:])])
    before = hits()
    (other,) = await run_all(engine, [_for("globex", "g", prompt)])
    cross = hits() - before
    before = hits()
    (same,) = await run_all(engine, [_for("acme", "a2", prompt)])
    assert hits() - before == 3 * block  # a tenant's own blocks are always found
    assert cross == (0 if scope == "tenant" else 3 * block)
    assert other.tokens == same.tokens  # a hit changes nothing in the output
