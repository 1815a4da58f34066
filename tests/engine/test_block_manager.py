"""Block accounting: reference counts, chained prefix hashes, LRU eviction of cached blocks."""

from __future__ import annotations

from inference.backend import GenerationRequest
from inference.engine.block_manager import BlockManager
from inference.engine.detokenizer import IncrementalDetokenizer
from inference.engine.sequence import Sequence
from inference.engine.tokenizer import ByteTokenizer

BS = 4


def _seq(tokens: list[int]) -> Sequence:
    request = GenerationRequest("r", tokens)
    detok = IncrementalDetokenizer(ByteTokenizer(), tokens, ())
    return Sequence(request, detok, None)


def _run(bm: BlockManager, tokens: list[int]) -> Sequence:
    """Admit, allocate and 'compute' the whole sequence, as a prefill step would."""
    seq = _seq(tokens)
    bm.admit(seq, bm.match_prefix(tokens))
    bm.grow(seq, len(tokens))
    seq.num_computed_tokens = len(tokens)
    bm.commit_full_blocks(seq)
    return seq


def test_shared_prefix_is_reference_counted() -> None:
    bm = BlockManager(8, BS)
    a = _run(bm, list(range(10)))  # 2 full blocks + 2 tokens
    b = _run(bm, [*range(8), 50, 51, 52])
    assert b.block_table[:2] == a.block_table[:2] and b.block_table[2] != a.block_table[2]
    assert (bm.query_tokens, bm.hit_tokens) == (21, 8)
    assert bm.num_used == 4
    bm.free(a)
    assert bm.num_used == 3  # shared blocks still held by b; a's partial block is free
    assert (bm.num_free, bm.num_cached) == (5, 0)
    bm.free(b)
    assert (bm.num_used, bm.num_cached, bm.num_free) == (0, 2, 6)


def test_hash_is_chained_so_equal_blocks_at_other_offsets_do_not_hit() -> None:
    bm = BlockManager(8, BS)
    seq = _run(bm, [1, 2, 3, 4, 1, 2, 3, 4, 9])
    bm.free(seq)
    assert bm.match_prefix([9, 9, 9, 9, 1, 2, 3, 4, 0]) == []
    assert len(bm.match_prefix([1, 2, 3, 4, 1, 2, 3, 4, 0])) == 2


def test_a_fully_cached_prompt_still_computes_its_last_block() -> None:
    bm = BlockManager(8, BS)
    bm.free(_run(bm, list(range(8))))
    assert len(bm.match_prefix(list(range(8)))) == 1
    assert len(bm.match_prefix(list(range(9)))) == 2


def test_cached_blocks_evicted_lru_and_never_when_prefix_caching_is_off() -> None:
    bm = BlockManager(4, BS)
    old = _run(bm, list(range(8)))
    bm.free(old)
    new = _run(bm, list(range(100, 108)))
    bm.free(new)
    assert bm.num_cached == 4
    _run(bm, list(range(200, 208)))  # needs 2 blocks: the least recently freed go first
    assert bm.match_prefix(list(range(9))) == []
    assert len(bm.match_prefix(list(range(100, 109)))) == 2

    off = BlockManager(4, BS, enable_prefix_caching=False)
    off.free(_run(off, list(range(8))))
    assert (off.num_cached, off.num_free, off.query_tokens) == (0, 4, 0)
