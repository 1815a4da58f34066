"""`AsyncEngine`: the asyncio face of the engine, with the model in one dedicated thread.

The event loop only validates, enqueues and reads outputs; the engine thread loops
schedule -> forward -> sample -> deliver. Scheduler state is guarded by one lock that is never
held during the forward, so `stats()`, `generate()` and `cancel()` stay cheap at any moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable

import torch

from inference.backend import (
    EngineError,
    BackendStats,
    FinishReason,
    GenerationRequest,
    InvalidRequestError,
    KVCacheStats,
    Priority,
    PromptTooLongError,
    QueueFullError,
    RequestOutput,
    StepStats,
)

from .block_manager import BlockManager
from .config import EngineConfig
from .detokenizer import IncrementalDetokenizer
from .loader import LoadedModel
from .model_runner import ModelRunner, PreparedBatch
from .sampler import sample
from .scheduler import ScheduledSeq, Scheduler
from .sequence import Sequence, SequenceStatus
from .stream import OutputStream

log = logging.getLogger(__name__)

Delivery = tuple[Sequence, RequestOutput]


class AsyncEngine:
    """Implements `inference.backend.Backend` for the built-in model."""

    backend_name = "builtin"

    def __init__(self, config: EngineConfig, loaded: LoadedModel, num_kv_blocks: int):
        self.config = config
        self.model_name = config.served_model_name
        self.tokenizer = loaded.tokenizer
        self.max_model_len = loaded.max_model_len
        self.num_kv_blocks = num_kv_blocks
        self.block_size = config.block_size
        self.dtype = config.dtype
        self.device = config.device
        self._vocab_size = loaded.model_config.vocab_size
        self._eos = loaded.tokenizer.eos_token_ids
        self._blocks = BlockManager(num_kv_blocks, config.block_size, config.enable_prefix_caching)
        self._scheduler = Scheduler(
            self._blocks, config.max_num_seqs, config.max_num_batched_tokens
        )
        self._runner = ModelRunner(
            loaded.model, num_kv_blocks, config.block_size, torch.device(config.device)
        )
        self._lock = threading.Condition()
        self._seqs: dict[str, Sequence] = {}
        self._listeners: list[Callable[[StepStats], None]] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._dead = False
        self._steps = 0
        self._seeds = random.Random(config.seed)

    # -- Backend ------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="inferwatch-engine", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        with self._lock:
            outputs = [
                self._finish(s, "error", "engine stopped") for s in list(self._seqs.values())
            ]
        self._deliver(outputs)

    def ready(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._dead and not self._stopping

    def generate(self, request: GenerationRequest) -> OutputStream:
        loop = asyncio.get_running_loop()
        priority = Priority.parse(request.priority)
        self._validate(request)
        params = request.sampling
        generator = None
        if params.temperature > 0:
            generator = torch.Generator(device=self._runner.device)
            seed = params.seed if params.seed is not None else self._seeds.getrandbits(63)
            generator.manual_seed(seed)
        detok = IncrementalDetokenizer(self.tokenizer, request.prompt_token_ids, params.stop)
        seq = Sequence(request, priority, detok, generator)
        seq.stream = OutputStream(request.request_id, self.cancel)
        seq.loop = loop
        with self._lock:
            if self._dead or self._stopping:
                raise EngineError("the engine is not running")
            if request.request_id in self._seqs:
                raise InvalidRequestError(f"request id {request.request_id!r} is already in use")
            if self._scheduler.num_waiting >= self.config.max_waiting:
                raise QueueFullError(
                    f"the waiting queue is full ({self.config.max_waiting} requests); retry later"
                )
            self._seqs[request.request_id] = seq
            self._scheduler.add(seq)
            self._lock.notify()
        return seq.stream

    async def cancel(self, request_id: str) -> None:
        """Frees the request's blocks now; a step already running ignores its result."""
        with self._lock:
            seq = self._seqs.get(request_id)
            outputs = [self._finish(seq, "cancelled")] if seq is not None else []
        self._deliver(outputs)

    def stats(self) -> BackendStats:
        with self._lock:
            now = time.monotonic()
            queues = self._scheduler.waiting
            blocks = self._blocks
            kv = KVCacheStats(
                blocks_total=blocks.num_blocks,
                blocks_used=blocks.num_used,
                blocks_free=blocks.num_free,
                blocks_cached=blocks.num_cached,
                prefix_cache_queries_tokens=blocks.query_tokens,
                prefix_cache_hits_tokens=blocks.hit_tokens,
                preemptions_by_priority=dict(self._scheduler.preemptions),
                block_size=self.block_size,
                dtype=self.dtype,
                device=self.device,
            )
            return BackendStats(
                waiting_by_priority={p: len(q) for p, q in queues.items()},
                oldest_wait_seconds_by_priority={
                    p: now - q[0].arrival if q else 0.0 for p, q in queues.items()
                },
                running=len(self._scheduler.running),
                steps_total=self._steps,
                engine_alive=self.ready(),
                kv=kv,
            )

    def add_step_listener(self, listener: Callable[[StepStats], None]) -> None:
        self._listeners.append(listener)

    # -- validation ---------------------------------------------------------------------------
    def _validate(self, request: GenerationRequest) -> None:
        prompt, params = request.prompt_token_ids, request.sampling
        limit = self.max_model_len
        if not prompt:
            raise InvalidRequestError("the prompt is empty")
        if len(prompt) > limit:
            raise PromptTooLongError(
                f"the prompt has {len(prompt)} tokens but the context window "
                f"(max_model_len) is {limit} tokens"
            )
        if params.max_tokens < 1:
            raise InvalidRequestError(f"max_tokens must be >= 1, got {params.max_tokens}")
        total = len(prompt) + params.max_tokens
        if total > limit:
            raise PromptTooLongError(
                f"prompt ({len(prompt)} tokens) + max_tokens ({params.max_tokens}) = {total} "
                f"exceeds the context window (max_model_len) of {limit} tokens"
            )
        blocks = self._blocks.blocks_for(total)
        if blocks > self.num_kv_blocks:
            raise PromptTooLongError(
                f"prompt + max_tokens = {total} tokens needs {blocks} KV blocks but the whole "
                f"cache has {self.num_kv_blocks} blocks of {self.block_size} tokens"
            )
        if params.temperature < 0:
            raise InvalidRequestError(f"temperature must be >= 0, got {params.temperature}")
        if not 0 < params.top_p <= 1:
            raise InvalidRequestError(f"top_p must be in (0, 1], got {params.top_p}")
        if min(prompt) < 0 or max(prompt) >= self._vocab_size:
            raise InvalidRequestError(f"prompt token ids must be in [0, {self._vocab_size})")

    # -- engine thread ------------------------------------------------------------------------
    def _run(self) -> None:
        if self._runner.device.type == "cpu":
            torch.set_num_threads(self.config.cpu_threads())
        try:
            while True:
                with self._lock:
                    while not self._stopping and not self._scheduler.has_work():
                        self._lock.wait()
                    if self._stopping:
                        return
                    start = time.monotonic()
                    batch = self._scheduler.schedule()
                    if not batch:
                        self._lock.wait(0.005)
                        continue
                    prepared = self._runner.prepare(batch)
                self._step(batch, prepared, start)
        except BaseException:
            log.exception("engine loop died")
            self._dead = True
            with self._lock:
                outputs = [
                    self._finish(s, "error", "engine loop died") for s in list(self._seqs.values())
                ]
            self._deliver(outputs)

    def _step(self, batch: list[ScheduledSeq], prepared: PreparedBatch, start: float) -> None:
        decodes = sum(1 for i in batch if i.num_tokens == 1 and i.seq.num_output_tokens > 0)
        items = prepared.sampling
        try:
            with torch.inference_mode():
                logits = self._runner.execute(prepared)
                tokens = sample(
                    logits, [i.seq.sampling for i in items], [i.seq.generator for i in items]
                )
        except Exception as exc:  # fail this step's requests, keep serving the others
            log.exception("model step failed")
            with self._lock:
                outputs = [
                    self._finish(i.seq, "error", f"model error: {type(exc).__name__}: {exc}")
                    for i in batch
                    if not i.seq.is_finished
                ]
            self._deliver(outputs)
            return
        now = time.monotonic()
        with self._lock:
            outputs = self._postprocess(batch, items, tokens, now)
            self._steps += 1
        # Listeners first: a client that sees its last token also sees that step's metrics.
        phase = "decode" if decodes == len(batch) else "prefill" if decodes == 0 else "mixed"
        step = StepStats(phase, now - start, len(batch), sum(i.num_tokens for i in batch))
        for listener in self._listeners:
            try:
                listener(step)
            except Exception:
                log.exception("step listener failed")
        self._deliver(outputs)

    def _postprocess(
        self, batch: list[ScheduledSeq], sampled: list[ScheduledSeq], tokens: list[int], now: float
    ) -> list[Delivery]:
        for item in batch:
            if not item.seq.is_finished:  # else cancelled while the model ran
                item.seq.num_computed_tokens += item.num_tokens
                self._blocks.commit_full_blocks(item.seq)
        outputs: list[Delivery] = []
        for item, token in zip(sampled, tokens, strict=True):
            seq = item.seq
            if seq.is_finished:
                continue
            seq.token_ids.append(token)
            if seq.times.first_token is None:
                seq.times.first_token = now
            seq.times.token_times.append(now)
            outputs.append(self._advance(seq, token))
        return outputs

    def _advance(self, seq: Sequence, token: int) -> Delivery:
        params = seq.sampling
        detok = seq.detokenizer
        if token in self._eos and not params.ignore_eos:
            detok.flush()
            return self._finish(seq, "stop", new_tokens=[token])
        detok.add_token(token)
        if detok.stopped:
            return self._finish(seq, "stop", new_tokens=[token])
        if seq.num_output_tokens >= params.max_tokens:
            detok.flush()
            return self._finish(seq, "length", new_tokens=[token])
        return self._output(seq, [token])

    def _finish(
        self,
        seq: Sequence,
        reason: FinishReason,
        error: str | None = None,
        new_tokens: list[int] | None = None,
    ) -> Delivery:
        """Release everything the sequence holds; returns its final output. Lock held."""
        self._scheduler.remove(seq)
        self._seqs.pop(seq.request_id, None)
        seq.finish_reason = reason
        seq.error = error
        seq.times.finished = time.monotonic()
        return self._output(seq, new_tokens or [])

    def _output(self, seq: Sequence, new_tokens: list[int]) -> Delivery:
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

    def _deliver(self, outputs: list[Delivery]) -> None:
        """Hand outputs to each request's event loop, one thread-safe callback per loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[OutputStream, RequestOutput]]] = {}
        for seq, out in outputs:
            if seq.loop is not None and seq.stream is not None:
                by_loop.setdefault(seq.loop, []).append((seq.stream, out))
        for loop, items in by_loop.items():
            # A closed loop means nobody is listening any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_put_all, items)


def _put_all(items: list[tuple[OutputStream, RequestOutput]]) -> None:
    for stream, out in items:
        stream.put(out)
