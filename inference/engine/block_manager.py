"""KV-cache block accounting: allocation, reference counts and the prefix cache.

A full block is identified by the chained hash hash(parent_hash, its token ids), so equal
hashes mean equal token prefixes and the block's K/V can be shared. A freed block whose hash is
known stays "cached": reusable on a hit, evicted least-recently-freed first when no never-used
block is left.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from .sequence import Sequence


def block_hash(parent: int | None, token_ids: list[int]) -> int:
    return hash((parent, tuple(token_ids)))


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True):
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self._ref_counts = [0] * num_blocks
        self._hash_of: list[int | None] = [None] * num_blocks
        self._block_of: dict[int, int] = {}
        self._free: deque[int] = deque(range(num_blocks))  # free, holding nothing reusable
        self._cached: OrderedDict[int, None] = OrderedDict()  # free, holding a prefix; LRU first
        self.query_tokens = 0
        self.hit_tokens = 0

    # -- counts -------------------------------------------------------------------------------
    @property
    def num_available(self) -> int:
        return len(self._free) + len(self._cached)

    @property
    def num_used(self) -> int:
        return self.num_blocks - self.num_available

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def num_cached(self) -> int:
        return len(self._cached)

    def blocks_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    # -- admission ----------------------------------------------------------------------------
    def match_prefix(self, token_ids: list[int]) -> list[int]:
        """Blocks holding the longest cached prefix; never all tokens (one must be computed
        to produce logits)."""
        if not self.enable_prefix_caching:
            return []
        hits: list[int] = []
        parent: int | None = None
        bs = self.block_size
        for i in range((len(token_ids) - 1) // bs):
            parent = block_hash(parent, token_ids[i * bs : (i + 1) * bs])
            block = self._block_of.get(parent)
            if block is None:
                break
            hits.append(block)
        return hits

    def can_admit(self, hits: list[int], num_new_blocks: int) -> bool:
        reclaimed = sum(1 for b in hits if self._ref_counts[b] == 0)
        return reclaimed + num_new_blocks <= self.num_available

    def admit(self, seq: Sequence, hits: list[int]) -> None:
        """Start a sequence on its cached prefix blocks; counts the lookup in tokens."""
        for b in hits:
            if self._ref_counts[b] == 0:
                del self._cached[b]
            self._ref_counts[b] += 1
        seq.block_table = list(hits)
        seq.block_hashes = [self._hash_of[b] for b in hits]  # type: ignore[misc]
        seq.num_computed_tokens = len(hits) * self.block_size
        if self.enable_prefix_caching:
            self.query_tokens += len(seq.token_ids)
            self.hit_tokens += seq.num_computed_tokens

    # -- growth and release -------------------------------------------------------------------
    def can_grow(self, seq: Sequence, num_tokens: int) -> bool:
        return self.blocks_for(num_tokens) - len(seq.block_table) <= self.num_available

    def grow(self, seq: Sequence, num_tokens: int) -> None:
        """Make room for the first `num_tokens` tokens of the sequence."""
        for _ in range(self.blocks_for(num_tokens) - len(seq.block_table)):
            seq.block_table.append(self._take())

    def free(self, seq: Sequence) -> None:
        # Tail blocks first, so they are evicted before the shared prefix blocks.
        for b in reversed(seq.block_table):
            self._ref_counts[b] -= 1
            if self._ref_counts[b] == 0:
                if self._hash_of[b] is not None:
                    self._cached[b] = None
                else:
                    self._free.append(b)
        seq.block_table = []
        seq.block_hashes = []

    def commit_full_blocks(self, seq: Sequence) -> None:
        """Register the blocks the last step filled, making them findable by later prompts."""
        bs = self.block_size
        for i in range(len(seq.block_hashes), seq.num_computed_tokens // bs):
            parent = seq.block_hashes[-1] if seq.block_hashes else None
            h = block_hash(parent, seq.token_ids[i * bs : (i + 1) * bs])
            seq.block_hashes.append(h)
            b = seq.block_table[i]
            if self.enable_prefix_caching and h not in self._block_of:
                self._block_of[h] = b
                self._hash_of[b] = h

    def _take(self) -> int:
        if self._free:
            b = self._free.popleft()
        else:
            b, _ = self._cached.popitem(last=False)
            del self._block_of[self._hash_of[b]]  # type: ignore[index]
            self._hash_of[b] = None
        self._ref_counts[b] = 1
        return b
