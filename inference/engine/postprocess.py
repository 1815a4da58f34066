"""A step's results applied to its sequences, and the outputs that tell their callers.

nano-vllm's `scheduler.postprocess`: record progress, append the sampled token, end the
request on EOS, a stop string or max_tokens, and build its `RequestOutput`. Lock held.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable

from inference.backend import FinishReason, RequestOutput

from .bridge import Delivery
from .sampler import Sampled, SampleError
from .scheduler import ScheduledSeq, Scheduler
from .sequence import Sequence, SequenceStatus

log = logging.getLogger(__name__)


class Postprocessor:
    def __init__(self, scheduler: Scheduler, eos_token_ids: Collection[int]):
        self._scheduler = scheduler
        self._eos = eos_token_ids

    def apply(
        self,
        batch: list[ScheduledSeq],
        sampled: list[ScheduledSeq],
        tokens: list[Sampled],
        now: float,
    ) -> list[Delivery]:
        """`sampled` are the batch items that got `tokens` (row order of the logits). A row that
        failed to sample, or a sequence whose own output raises, ends that sequence alone."""
        for item in batch:
            if not item.seq.is_finished:  # else cancelled while the model ran
                item.seq.num_computed_tokens += item.num_tokens
                self._scheduler.blocks.commit_full_blocks(item.seq)
        outputs: list[Delivery] = []
        for item, token in zip(sampled, tokens, strict=True):
            seq = item.seq
            if seq.is_finished:
                continue
            if isinstance(token, SampleError):
                outputs.append(self._fail_one(seq, token.message))
                continue
            seq.token_ids.append(token)
            if seq.times.first_token is None:
                seq.times.first_token = now
            seq.times.token_times.append(now)
            try:
                outputs.append(self._advance(seq, token))
            except Exception as exc:  # e.g. a tokenizer that cannot decode a sampled id
                log.exception("output failed for one sequence")
                outputs.append(self._fail_one(seq, f"output error: {type(exc).__name__}: {exc}"))
        return outputs

    def finish(
        self,
        seq: Sequence,
        reason: FinishReason,
        error: str | None = None,
        new_tokens: list[int] | None = None,
    ) -> Delivery:
        """Release everything the sequence holds; returns its final output."""
        self._scheduler.remove(seq)
        seq.finish_reason = reason
        seq.error = error
        seq.times.finished = time.monotonic()
        return self._output(seq, new_tokens or [])

    def fail(self, seqs: Iterable[Sequence], error: str) -> list[Delivery]:
        """End every unfinished one of `seqs` with `error` (a failed step, a stopped engine)."""
        return [self._fail_one(s, error) for s in list(seqs) if not s.is_finished]

    def _fail_one(self, seq: Sequence, error: str) -> Delivery:
        """End one sequence with `error`; if building its output is what raises (its
        detokenizer), end it without text rather than let it take the engine loop down."""
        try:
            return self.finish(seq, "error", error)
        except Exception:
            log.exception("final output failed for one sequence")
            self._scheduler.remove(seq)
            seq.finish_reason, seq.error = "error", error
            seq.times.finished = time.monotonic()
            return seq, RequestOutput(
                request_id=seq.request_id,
                token_ids=[],
                text="",
                finished=True,
                finish_reason="error",
                prompt_tokens=seq.num_prompt_tokens,
                completion_tokens=seq.num_output_tokens,
                times=seq.times,
                error=error,
            )

    def _advance(self, seq: Sequence, token: int) -> Delivery:
        params = seq.sampling
        detok = seq.detokenizer
        if token in self._eos and not params.ignore_eos:
            detok.flush()
            return self.finish(seq, "stop", new_tokens=[token])
        detok.add_token(token)
        if detok.stopped:
            return self.finish(seq, "stop", new_tokens=[token])
        if seq.num_output_tokens >= params.max_tokens:
            detok.flush()
            return self.finish(seq, "length", new_tokens=[token])
        return self._output(seq, [token])

    @staticmethod
    def _output(seq: Sequence, new_tokens: list[int]) -> Delivery:
        finished = seq.status is SequenceStatus.FINISHED
        return seq, RequestOutput(
            request_id=seq.request_id,
            token_ids=new_tokens,
            text=seq.detokenizer.take(final=finished),
            finished=finished,
            finish_reason=seq.finish_reason,
            prompt_tokens=seq.num_prompt_tokens,
            completion_tokens=seq.num_output_tokens,
            times=seq.times,
            error=seq.error,
        )
