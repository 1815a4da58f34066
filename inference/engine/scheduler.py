"""Continuous batching with priority classes, a token budget and preemption by recomputation.

Priority is more than the order of the waiting queue: a request's time to first token is the
rest of the step already running when it arrives plus the step that prefills it, so while a
more important class has work in the engine, or had within `ACTIVE_HOLD_S`, the classes below
it prefill in small chunks (`LOWER_PREFILL_SHARE` of the step's budget, in total; none in a
step that prefills the more important class's own work) and leave the last quarter of the
running slots (`RESERVED_SLOT_SHARE`) free: a premium request then finds a free slot and a short
step instead of a long prefill of batch work, and no batch sequence is preempted (and
recomputed) to make room for it. With no more important work for that long, a class gets the
whole engine.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from inference.backend import Priority

from .block_manager import BlockManager
from .sequence import Sequence, SequenceStatus

# While a more important class has work, the prefill tokens per step of all the classes below
# it together: 1/32 of the budget (64 of 2048), at least one block. Their prompts still go in,
# a chunk a step, but no step they share with premium work is long.
LOWER_PREFILL_SHARE = 1 / 32
# While a more important class has work, the classes below it leave this share of the running
# slots free (4 of 16; none below 4 slots), so its next request finds room without preempting.
RESERVED_SLOT_SHARE = 1 / 4
# A class keeps that protection this long after its last work: requests of a class come and go
# between steps, and a protection that lapsed at every gap would let a long prefill of batch
# work start just before the next premium request arrives.
ACTIVE_HOLD_S = 5.0


@dataclass
class ScheduledSeq:
    seq: Sequence
    num_tokens: int  # tokens computed this step: 1 for decode, a chunk for (re)prefill


@dataclass
class StepBudget:
    """One step's token budget, and the part of it that prefills of the classes below `top`
    (the most important class with work) may still take together."""

    tokens: int
    lower: int
    top: int | None
    charged: set[str] = field(default_factory=set)  # request ids that took of `lower`

    def _lower_prefill(self, seq: Sequence) -> bool:
        """A prefill or recomputation (not a decode) of a class below `top`."""
        lower = self.top is not None and seq.priority.rank > self.top
        return lower and seq.num_uncomputed_tokens > 1

    def chunk(self, seq: Sequence, uncomputed: int) -> int:
        """Tokens `seq` may compute this step (0: none, its class's share is spent)."""
        n = min(uncomputed, self.tokens)
        return min(n, self.lower) if self._lower_prefill(seq) else n

    def spend(self, seq: Sequence, n: int) -> None:
        self.tokens -= n
        if self._lower_prefill(seq):
            self.lower -= n
            self.charged.add(seq.request_id)

    def refund(self, seq: Sequence, n: int) -> None:
        self.tokens += n
        if seq.request_id in self.charged:
            self.lower += n
            self.charged.discard(seq.request_id)


class Scheduler:
    """Each step: grow running sequences (most important first, preempting the least important
    when blocks run out), then admit waiting ones in priority/arrival order within the token
    budget; a waiting sequence that finds no room may preempt running ones of a lower class.
    Classes below the most important one with work share a small prefill budget and leave
    reserved slots free (the module's docstring says why)."""

    def __init__(
        self,
        block_manager: BlockManager,
        max_num_seqs: int,
        max_batched_tokens: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.blocks = block_manager
        self._clock = clock
        self._active_until: dict[Priority, float] = {}
        self.max_num_seqs = max_num_seqs
        self.max_batched_tokens = max_batched_tokens
        self.lower_prefill_tokens = max(
            block_manager.block_size, int(max_batched_tokens * LOWER_PREFILL_SHARE)
        )
        self.lower_slots = max_num_seqs - int(max_num_seqs * RESERVED_SLOT_SHARE)
        self.last_step = StepBudget(max_batched_tokens, self.lower_prefill_tokens, None)
        self.waiting: dict[Priority, list[Sequence]] = {p: [] for p in Priority}
        self.running: list[Sequence] = []
        self.preemptions: dict[Priority, int] = {p: 0 for p in Priority}
        self._by_id: dict[str, Sequence] = {}  # every unfinished sequence, waiting or running

    @property
    def num_waiting(self) -> int:
        return sum(len(q) for q in self.waiting.values())

    def has_work(self) -> bool:
        return bool(self.running) or self.num_waiting > 0

    def get(self, request_id: str) -> Sequence | None:
        return self._by_id.get(request_id)

    @property
    def sequences(self) -> list[Sequence]:
        """Every unfinished sequence (a copy: finishing them changes the registry)."""
        return list(self._by_id.values())

    def add(self, seq: Sequence) -> None:
        """Queue a new sequence, or a preempted one again."""
        self._by_id[seq.request_id] = seq
        seq.status = SequenceStatus.WAITING
        bisect.insort(self.waiting[seq.priority], seq, key=lambda s: s.sort_key)

    def remove(self, seq: Sequence) -> None:
        """Take a sequence out wherever it is and free its blocks (finish or cancel)."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting[seq.priority]:
            self.waiting[seq.priority].remove(seq)
        self._by_id.pop(seq.request_id, None)
        self.blocks.free(seq)
        seq.status = SequenceStatus.FINISHED

    def _top_rank(self) -> int | None:
        """Rank of the most important class with work in the engine now or within the last
        ACTIVE_HOLD_S (None: none)."""
        now = self._clock()
        working = {p for p, q in self.waiting.items() if q} | {s.priority for s in self.running}
        for priority in working:
            self._active_until[priority] = now + ACTIVE_HOLD_S
        active = [p.rank for p, until in self._active_until.items() if until > now]
        return min(active, default=None)

    def _top_prefill_pending(self, top: int | None) -> bool:
        """Work of the most important class waits to be prefilled (new, or preempted): this
        step is its prefill, which a lower class's chunk would only make longer (on a CPU a
        64-token chunk costs about a quarter of a short prompt's prefill)."""
        if top is None:
            return False
        if any(self.waiting[p] for p in Priority if p.rank <= top):
            return True
        return any(s.priority.rank <= top and s.num_uncomputed_tokens > 1 for s in self.running)

    def schedule(self) -> list[ScheduledSeq]:
        top = self._top_rank()
        lower = 0 if self._top_prefill_pending(top) else self.lower_prefill_tokens
        budget = StepBudget(self.max_batched_tokens, lower, top)
        self.last_step = budget  # what was left of it, for tests and debugging
        batch: list[ScheduledSeq] = []
        queue = sorted(self.running, key=lambda s: s.sort_key)
        running: list[Sequence] = []
        deferred: list[Sequence] = []  # lower-class prefills past this step's share
        preempted = False
        while queue and budget.tokens > 0:
            seq = queue.pop(0)
            n = budget.chunk(seq, seq.num_uncomputed_tokens)
            if n == 0:
                deferred.append(seq)
                continue
            while not self.blocks.can_grow(seq, seq.num_computed_tokens + n):
                # Lowest priority, latest arrival: the queue's tail, else `seq` itself (what was
                # deferred came before `seq` in this order).
                victim = queue.pop() if queue else seq
                self._preempt(victim)
                preempted = True
                if victim is seq:
                    break
            else:
                self.blocks.grow(seq, seq.num_computed_tokens + n)
                batch.append(ScheduledSeq(seq, n))
                running.append(seq)
                budget.spend(seq, n)
        # The rest of `queue` waits for budget, keeping its blocks, as do deferred prefills.
        self.running = running + deferred + queue
        if not preempted:  # no room was found for running work: admitting more would thrash
            self._admit(batch, budget)
        return batch

    def _slots(self, seq: Sequence, top: int | None) -> int:
        """Running slots `seq` may find taken and still be admitted: all of them for the most
        important class with work, the unreserved ones for the classes below it."""
        if top is None or seq.priority.rank <= top:
            return self.max_num_seqs
        return self.lower_slots

    def _admit(self, batch: list[ScheduledSeq], budget: StepBudget) -> None:
        for priority in Priority:
            queue = self.waiting[priority]
            while queue and budget.tokens > 0:
                seq = queue[0]
                hits = self.blocks.match_prefix(seq.token_ids, seq.tenant)
                cached = len(hits) * self.blocks.block_size
                n = budget.chunk(seq, len(seq.token_ids) - cached)
                if n == 0:
                    return  # the lower classes' share is spent, and the rest are lower yet
                new_blocks = self.blocks.blocks_for(cached + n) - len(hits)
                full = len(self.running) >= self._slots(seq, budget.top)
                if full or not self.blocks.can_admit(hits, new_blocks):
                    victim = self._victim_for(seq, 1 if full else new_blocks)
                    if victim is None:
                        return  # strict priority: nobody behind may jump ahead
                    self._unschedule(victim, batch, budget)
                    self.running.remove(victim)
                    self._preempt(victim)
                    continue
                queue.pop(0)
                budget.spend(seq, n)
                self.blocks.admit(seq, hits)
                self.blocks.grow(seq, cached + n)
                seq.status = SequenceStatus.RUNNING
                if seq.times.first_scheduled is None:
                    seq.times.first_scheduled = time.monotonic()
                self.running.append(seq)
                batch.append(ScheduledSeq(seq, n))

    def _victim_for(self, seq: Sequence, blocks_needed: int) -> Sequence | None:
        """The least important running sequence of a strictly lower class than `seq`, if
        preempting that class could make room at all (else nothing is preempted in vain)."""
        lower = [s for s in self.running if s.priority.rank > seq.priority.rank]
        held = sum(len(s.block_table) for s in lower)
        if not lower or self.blocks.num_available + held < blocks_needed:
            return None
        return max(lower, key=lambda s: s.sort_key)

    @staticmethod
    def _unschedule(seq: Sequence, batch: list[ScheduledSeq], budget: StepBudget) -> None:
        """Drop `seq` from this step's batch and give back the budget it had taken."""
        for i, item in enumerate(batch):
            if item.seq is seq:
                del batch[i]
                budget.refund(seq, item.num_tokens)
                return

    def _preempt(self, seq: Sequence) -> None:
        """Free the blocks; the sequence waits again at its original arrival and is
        recomputed (prompt and generated tokens) when re-admitted."""
        self.blocks.free(seq)
        seq.num_computed_tokens = 0
        seq.times.preempted.append(time.monotonic())
        self.preemptions[seq.priority] += 1
        self.add(seq)
