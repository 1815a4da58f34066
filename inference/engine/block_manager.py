"""KV-cache block accounting: allocation, reference counts and the prefix cache.

A full block is found by its key: a keyed BLAKE2b (a random key per manager, from `secrets`)
chained over the parent block's key and the block's token ids, starting from a root that names
the cache scope (everyone, or one tenant). Equal keys mean equal token prefixes, so the block's
K/V can be shared; unlike Python's `hash()`, nobody outside the process can compute, predict or
collide a key, and a hit is still checked against the block's stored parent and tokens (a key
match whose contents differ is a miss). A freed block whose key is known stays "cached":
reusable on a hit, evicted least-recently-freed first when no never-used block is left.
docs/security.md says what the cache still reveals.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from collections import OrderedDict, deque
from collections.abc import Sequence as Tokens

from .sequence import Sequence

# Who shares cached blocks: everyone, or only requests of the same tenant.
PREFIX_CACHE_SCOPES = ("global", "tenant")

Content = tuple[bytes, tuple[int, ...]]  # (parent key, token ids): what a cached block holds


def block_hash(key: bytes, parent: bytes, token_ids: Tokens[int]) -> bytes:
    """A block's key: keyed BLAKE2b-256 over its parent's key and its token ids."""
    h = hashlib.blake2b(key=key, digest_size=32, person=b"inferwatch-block")
    h.update(parent)
    h.update(struct.pack(f"<{len(token_ids)}q", *token_ids))
    return h.digest()


def scope_root(key: bytes, tenant: str | None) -> bytes:
    """The parent key of a prompt's first block: one for everyone, or one per tenant (None,
    no tenant, is a scope of its own that no tenant name can equal)."""
    h = hashlib.blake2b(key=key, digest_size=32, person=b"inferwatch-root")
    h.update(b"\x00" if tenant is None else b"\x01" + tenant.encode("utf-8", "surrogatepass"))
    return h.digest()


class BlockManager:
    def __init__(
        self,
        num_blocks: int,
        block_size: int,
        enable_prefix_caching: bool = True,
        scope: str = "global",
        key: bytes | None = None,
    ):
        if scope not in PREFIX_CACHE_SCOPES:
            raise ValueError(f"prefix cache scope must be one of {PREFIX_CACHE_SCOPES}")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.scope = scope
        self._key = key if key is not None else secrets.token_bytes(32)
        self._ref_counts = [0] * num_blocks
        self._hash_of: list[bytes | None] = [None] * num_blocks
        self._content: list[Content | None] = [None] * num_blocks  # checked on every hit
        self._block_of: dict[bytes, int] = {}
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
    def match_prefix(self, token_ids: list[int], tenant: str | None = None) -> list[int]:
        """Blocks holding the longest cached prefix in the tenant's scope; never all tokens
        (one must be computed to produce logits)."""
        if not self.enable_prefix_caching:
            return []
        hits: list[int] = []
        parent = self._root(tenant)
        bs = self.block_size
        for i in range((len(token_ids) - 1) // bs):
            tokens = tuple(token_ids[i * bs : (i + 1) * bs])
            key = block_hash(self._key, parent, tokens)
            block = self._block_of.get(key)
            if block is None or self._content[block] != (parent, tokens):
                break  # a key match that holds other tokens is a miss
            hits.append(block)
            parent = key
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
            parent = seq.block_hashes[-1] if seq.block_hashes else self._root(seq.tenant)
            tokens = tuple(seq.token_ids[i * bs : (i + 1) * bs])
            h = block_hash(self._key, parent, tokens)
            seq.block_hashes.append(h)
            b = seq.block_table[i]
            if self.enable_prefix_caching and h not in self._block_of:
                self._block_of[h] = b
                self._hash_of[b] = h
                self._content[b] = (parent, tokens)

    def _root(self, tenant: str | None) -> bytes:
        return scope_root(self._key, tenant if self.scope == "tenant" else None)

    def _take(self) -> int:
        if self._free:
            b = self._free.popleft()
        else:
            b, _ = self._cached.popitem(last=False)
            del self._block_of[self._hash_of[b]]  # type: ignore[index]
            self._hash_of[b] = None
            self._content[b] = None
        self._ref_counts[b] = 1
        return b
