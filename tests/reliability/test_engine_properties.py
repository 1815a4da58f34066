"""Properties of the engine's bookkeeping under any order of operations, with hypothesis.

The real Scheduler, BlockManager and Postprocessor are driven by a rule-based state machine
(add, step, fail a step, cancel, in any order) with a ghost model of the KV cache standing in
for the forward: each slot remembers the token prefix whose K/V it holds. After every rule:
reference counts are exact and never negative, every block is free, cached or used (once),
every sequence reads only K/V of its own tokens (so cached blocks are reused for identical
contents only, and per tenant when scoped), and admission follows priority order and never
leaves waiting a request that fits. At the end, draining all work returns every block.

Also here: the sampler, for any finite temperature and top_p and any logits, returns a token
for every row and no row changes another's. FUZZ_EXAMPLES bounds the runs (`make
reliability` raises it).
"""

from __future__ import annotations

import os

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from inference.backend import GenerationRequest, Priority, SamplingParams
from inference.engine.block_manager import PREFIX_CACHE_SCOPES, BlockManager
from inference.engine.detokenizer import IncrementalDetokenizer
from inference.engine.postprocess import Postprocessor
from inference.engine.sampler import Sampled, SampleError, sample
from inference.engine.scheduler import ScheduledSeq, Scheduler
from inference.engine.sequence import Sequence, SequenceStatus
from inference.engine.tokenizer import ByteTokenizer

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
BS = 4
# Few distinct prefixes over a 2-token alphabet: prompts share blocks, hits are common.
PREFIXES = [[], [1, 0, 1, 0], [1, 0, 1, 0, 0, 0, 1, 1], [0, 1, 1, 0, 1]]
GARBAGE = ("garbage",)  # what a failed step may have left in the slots it was writing
TOKENIZER = ByteTokenizer()


class EngineBookkeeping(RuleBasedStateMachine):
    @initialize(
        num_blocks=st.integers(3, 16),
        max_num_seqs=st.integers(1, 6),
        budget=st.integers(1, 32),
        caching=st.booleans(),
        scope=st.sampled_from(PREFIX_CACHE_SCOPES),
    )
    def setup(
        self, num_blocks: int, max_num_seqs: int, budget: int, caching: bool, scope: str
    ) -> None:
        self.blocks = BlockManager(num_blocks, BS, caching, scope)
        self.scheduler = Scheduler(self.blocks, max_num_seqs, budget)
        self.post = Postprocessor(self.scheduler, eos_token_ids=())
        self.kv: dict[tuple[int, int], tuple[object, ...]] = {}  # (block, slot) -> prefix held
        self.writer: dict[int, str | None] = {}  # block -> tenant whose step last wrote it
        self.count = 0

    # -- rules --------------------------------------------------------------------------------
    @rule(
        lead=st.sampled_from([[2], []]),  # with and without a BOS-like first token
        prefix=st.sampled_from(PREFIXES),
        suffix=st.lists(st.integers(0, 1), max_size=8),
        max_tokens=st.integers(1, 8),
        priority=st.sampled_from(list(Priority)),
        tenant=st.sampled_from([None, "acme", "globex"]),
    )
    def add(
        self,
        lead: list[int],
        prefix: list[int],
        suffix: list[int],
        max_tokens: int,
        priority: Priority,
        tenant: str | None,
    ) -> None:
        prompt = [*lead, *prefix, *suffix]
        if not prompt:
            return  # the validator refuses it at submit
        if self.blocks.blocks_for(len(prompt) + max_tokens) > self.blocks.num_blocks:
            return  # the validator refuses it at submit
        self.count += 1
        sampling = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
        request = GenerationRequest(f"r{self.count}", prompt, sampling, priority, tenant=tenant)
        detok = IncrementalDetokenizer(TOKENIZER, prompt, ())
        self.scheduler.add(Sequence(request, detok, None))

    @precondition(lambda self: self.scheduler.has_work())
    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        """schedule -> (forward) -> postprocess, with a cancel or a sampling fault at times."""
        batch = self._schedule()
        if batch and data.draw(st.booleans(), "cancel one mid-step"):
            item = data.draw(st.sampled_from(batch), "cancelled")
            self.post.finish(item.seq, "cancelled")
        self._forward(batch)
        sampled = [
            i for i in batch if i.seq.num_computed_tokens + i.num_tokens == len(i.seq.token_ids)
        ]
        tokens: list[Sampled] = [
            data.draw(st.one_of(st.integers(0, 1), st.just(SampleError("fault"))), "token")
            for _ in sampled
        ]
        self.post.apply(batch, sampled, tokens, now=0.0)

    @precondition(lambda self: self.scheduler.has_work())
    @rule()
    def failed_step(self) -> None:
        """The forward raises part way: the step's sequences fail, their slots hold garbage."""
        batch = self._schedule()
        for item in batch:
            for block, slot in self._slots(item):
                self.kv[block, slot] = GARBAGE
        self.post.fail((i.seq for i in batch), "model error")

    @precondition(lambda self: bool(self.scheduler.sequences))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        seq = data.draw(st.sampled_from(self.scheduler.sequences), "cancelled")
        self.post.finish(seq, "cancelled")

    # -- a step, checked ----------------------------------------------------------------------
    def _schedule(self) -> list[ScheduledSeq]:
        order = sorted(self._waiting(), key=lambda s: s.sort_key)
        preemptions = sum(self.scheduler.preemptions.values())
        batch = self.scheduler.schedule()
        preempted = sum(self.scheduler.preemptions.values()) > preemptions

        assert len({id(i.seq) for i in batch}) == len(batch)
        assert all(i.num_tokens >= 1 and not i.seq.is_finished for i in batch)
        used = sum(i.num_tokens for i in batch)
        assert used <= self.scheduler.max_batched_tokens
        assert len(self.scheduler.running) <= self.scheduler.max_num_seqs
        # Admission is strict priority, FIFO within a class: those admitted are a prefix of
        # the waiting order, and the first one left waiting did not fit (or preemption ran).
        # Below the most important class with work, "fits" means within the lower classes'
        # prefill share of the step and their unreserved slots.
        admitted = [s.status is SequenceStatus.RUNNING for s in order]
        assert admitted == sorted(admitted, reverse=True), "a later request jumped ahead"
        left = [s for s in order if s.status is SequenceStatus.WAITING]
        room = self.scheduler.max_batched_tokens - used
        slots = self.scheduler.max_num_seqs
        step = self.scheduler.last_step
        assert 0 <= step.lower <= self.scheduler.lower_prefill_tokens
        if left and step.top is not None and left[0].priority.rank > step.top:
            room, slots = min(room, step.lower), self.scheduler.lower_slots
        free_slot = len(self.scheduler.running) < slots
        if left and not preempted and room > 0 and free_slot:
            head = left[0]
            hits = self.blocks.match_prefix(head.token_ids, head.tenant)
            cached = len(hits) * BS
            n = min(len(head.token_ids) - cached, room)
            need = self.blocks.blocks_for(cached + n) - len(hits)
            assert not self.blocks.can_admit(hits, need), "a waiting request that fits waits"
        for item in batch:  # what the model is about to attend to
            self._check_reads(item.seq)
        return batch

    def _forward(self, batch: list[ScheduledSeq]) -> None:
        for item in batch:
            if item.seq.is_finished:  # cancelled: its blocks may already be someone else's
                continue
            start = item.seq.num_computed_tokens
            for p, (block, slot) in enumerate(self._slots(item), start):
                self.kv[block, slot] = tuple(item.seq.token_ids[: p + 1])
                self.writer[block] = item.seq.tenant

    def _slots(self, item: ScheduledSeq) -> list[tuple[int, int]]:
        seq, start = item.seq, item.seq.num_computed_tokens
        return [(seq.block_table[p // BS], p % BS) for p in range(start, start + item.num_tokens)]

    def _check_reads(self, seq: Sequence) -> None:
        """Every computed position holds the K/V of exactly this sequence's prefix."""
        for p in range(seq.num_computed_tokens):
            block = seq.block_table[p // BS]
            assert self.kv.get((block, p % BS)) == tuple(seq.token_ids[: p + 1]), (
                f"{seq.request_id} reads K/V of other contents at position {p}"
            )
            if self.blocks.scope == "tenant":
                assert self.writer[block] == seq.tenant, "a block crossed tenants"

    def _waiting(self) -> list[Sequence]:
        return [s for q in self.scheduler.waiting.values() for s in q]

    # -- invariants ---------------------------------------------------------------------------
    @invariant()
    def blocks_are_accounted_for(self) -> None:
        if not hasattr(self, "blocks"):
            return
        bm = self.blocks
        live = self.scheduler.sequences
        holders = [0] * bm.num_blocks
        for seq in live:
            assert len(set(seq.block_table)) == len(seq.block_table)
            for b in seq.block_table:
                holders[b] += 1
        assert bm._ref_counts == holders  # exact, so never negative
        free, cached = set(bm._free), set(bm._cached)
        assert len(free) == len(bm._free) and not free & cached
        assert all(holders[b] == 0 for b in free | cached)
        assert len(free) + len(cached) + sum(1 for h in holders if h) == bm.num_blocks
        assert all(bm._hash_of[b] is None for b in free)
        assert all(bm._hash_of[b] is not None for b in cached)
        assert {bm._block_of[h]: h for h in bm._block_of} == {
            b: h for b, h in enumerate(bm._hash_of) if h is not None
        }
        if not bm.enable_prefix_caching:
            assert not cached and not bm._block_of

    @invariant()
    def sequences_are_where_they_say(self) -> None:
        if not hasattr(self, "blocks"):
            return
        running, waiting = self.scheduler.running, self._waiting()
        assert {id(s) for s in running}.isdisjoint(id(s) for s in waiting)
        assert sorted(map(id, running + waiting)) == sorted(map(id, self.scheduler.sequences))
        for seq in waiting:
            assert seq.status is SequenceStatus.WAITING
            assert seq.block_table == [] and seq.num_computed_tokens == 0
        for seq in running:
            assert seq.status is SequenceStatus.RUNNING
            assert len(seq.block_table) >= self.blocks.blocks_for(seq.num_computed_tokens)

    def teardown(self) -> None:
        """Every request finishes once nothing new arrives, and every block comes back."""
        if not hasattr(self, "blocks"):
            return
        for _ in range(10_000):
            if not self.scheduler.has_work():
                break
            batch = self._schedule()
            self._forward(batch)
            sampled = [
                i for i in batch if i.seq.num_computed_tokens + i.num_tokens == len(i.seq.token_ids)
            ]
            self.post.apply(batch, sampled, [0] * len(sampled), now=0.0)
        assert not self.scheduler.has_work(), "work left that never gets scheduled"
        assert self.blocks.num_used == 0
        assert self.blocks.num_free + self.blocks.num_cached == self.blocks.num_blocks
        assert not any(self.blocks._ref_counts)


EngineBookkeeping.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
TestEngineBookkeeping = EngineBookkeeping.TestCase


# -- the sampler ------------------------------------------------------------------------------
TEMPERATURES = st.one_of(
    st.just(0.0),
    st.floats(min_value=0.0, exclude_min=True, max_value=1e6),
    st.sampled_from([5e-324, 1e-300, 1e-46, 1e-40, 1.1754944e-38]),
)
TOP_PS = st.one_of(
    st.floats(min_value=0.0, max_value=1.0, exclude_min=True),
    st.sampled_from([5e-324, 1e-300, 1e-46, 1e-45, 1.0]),
)
LOGIT = st.one_of(
    st.floats(-1e4, 1e4, width=32), st.sampled_from([float("nan"), float("inf"), -float("inf")])
)


@given(
    rows=st.lists(
        st.tuples(TEMPERATURES, TOP_PS, st.lists(LOGIT, min_size=8, max_size=8)),
        min_size=1,
        max_size=4,
    ),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
@settings(
    max_examples=EXAMPLES * 4,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_sampler_returns_a_token_per_row_whatever_the_params(
    rows: list[tuple[float, float, list[float]]], dtype: torch.dtype
) -> None:
    logits = torch.tensor([r[2] for r in rows], dtype=dtype)
    params = [SamplingParams(temperature=t, top_p=p) for t, p, _ in rows]

    def generators() -> list[torch.Generator | None]:
        return [torch.Generator().manual_seed(i) for i in range(len(rows))]

    tokens = sample(logits, params, generators())
    assert all(isinstance(t, int) and 0 <= t < 8 for t in tokens), tokens
    for i in range(len(rows)):  # a row draws the same with or without the others
        assert sample(logits[i : i + 1], params[i : i + 1], generators()[i : i + 1]) == [tokens[i]]
