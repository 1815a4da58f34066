"""Continuous batching with priority classes, a token budget and preemption by recomputation."""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass

from inference.backend import Priority

from .block_manager import BlockManager
from .sequence import Sequence, SequenceStatus


@dataclass
class ScheduledSeq:
    seq: Sequence
    num_tokens: int  # tokens computed this step: 1 for decode, a chunk for (re)prefill


class Scheduler:
    """Each step: grow running sequences (most important first, preempting the least important
    when blocks run out), then admit waiting ones in priority/arrival order within the token
    budget; a waiting sequence that finds no room may preempt running ones of a lower class."""

    def __init__(self, block_manager: BlockManager, max_num_seqs: int, max_batched_tokens: int):
        self.blocks = block_manager
        self.max_num_seqs = max_num_seqs
        self.max_batched_tokens = max_batched_tokens
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

    def schedule(self) -> list[ScheduledSeq]:
        budget = self.max_batched_tokens
        batch: list[ScheduledSeq] = []
        queue = sorted(self.running, key=lambda s: s.sort_key)
        running: list[Sequence] = []
        preempted = False
        while queue and budget > 0:
            seq = queue.pop(0)
            n = min(seq.num_uncomputed_tokens, budget)
            while not self.blocks.can_grow(seq, seq.num_computed_tokens + n):
                victim = queue.pop() if queue else seq  # lowest priority, latest arrival
                self._preempt(victim)
                preempted = True
                if victim is seq:
                    break
            else:
                self.blocks.grow(seq, seq.num_computed_tokens + n)
                batch.append(ScheduledSeq(seq, n))
                running.append(seq)
                budget -= n
        self.running = running + queue  # the rest of `queue` waits for budget, keeping blocks
        if not preempted:  # no room was found for running work: admitting more would thrash
            budget = self._admit(batch, budget)
        return batch

    def _admit(self, batch: list[ScheduledSeq], budget: int) -> int:
        for priority in Priority:
            queue = self.waiting[priority]
            while queue and budget > 0:
                seq = queue[0]
                hits = self.blocks.match_prefix(seq.token_ids, seq.tenant)
                cached = len(hits) * self.blocks.block_size
                n = min(len(seq.token_ids) - cached, budget)
                new_blocks = self.blocks.blocks_for(cached + n) - len(hits)
                full = len(self.running) >= self.max_num_seqs
                if full or not self.blocks.can_admit(hits, new_blocks):
                    victim = self._victim_for(seq, 1 if full else new_blocks)
                    if victim is None:
                        return 0  # strict priority: nobody behind may jump ahead
                    budget += self._unschedule(victim, batch)
                    self.running.remove(victim)
                    self._preempt(victim)
                    continue
                queue.pop(0)
                self.blocks.admit(seq, hits)
                self.blocks.grow(seq, cached + n)
                seq.status = SequenceStatus.RUNNING
                if seq.times.first_scheduled is None:
                    seq.times.first_scheduled = time.monotonic()
                self.running.append(seq)
                batch.append(ScheduledSeq(seq, n))
                budget -= n
        return budget

    def _victim_for(self, seq: Sequence, blocks_needed: int) -> Sequence | None:
        """The least important running sequence of a strictly lower class than `seq`, if
        preempting that class could make room at all (else nothing is preempted in vain)."""
        lower = [s for s in self.running if s.priority.rank > seq.priority.rank]
        held = sum(len(s.block_table) for s in lower)
        if not lower or self.blocks.num_available + held < blocks_needed:
            return None
        return max(lower, key=lambda s: s.sort_key)

    @staticmethod
    def _unschedule(seq: Sequence, batch: list[ScheduledSeq]) -> int:
        """Drop `seq` from this step's batch; returns the budget it had taken."""
        for i, item in enumerate(batch):
            if item.seq is seq:
                del batch[i]
                return item.num_tokens
        return 0

    def _preempt(self, seq: Sequence) -> None:
        """Free the blocks; the sequence waits again at its original arrival and is
        recomputed (prompt and generated tokens) when re-admitted."""
        self.blocks.free(seq)
        seq.num_computed_tokens = 0
        seq.times.preempted.append(time.monotonic())
        self.preemptions[seq.priority] += 1
        self.add(seq)
