"""`AsyncEngine`: the asyncio face of the engine, with the model in one dedicated thread.

The event loop only validates, enqueues and reads outputs; the engine thread loops
schedule -> run -> postprocess, and the bridge hands each output to its caller's loop.
Scheduler state is guarded by one lock that is never held during the forward, so `stats()`,
`generate()` and `cancel()` stay cheap at any moment.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Literal

import torch

from inference.backend import (
    BackendStats,
    EngineError,
    GenerationRequest,
    InvalidRequestError,
    KVCacheStats,
    QueueFullError,
    SamplingParams,
    StepStats,
)

from .block_manager import BlockManager
from .bridge import Delivery, OutputBridge
from .config import EngineConfig
from .detokenizer import IncrementalDetokenizer
from .loader import LoadedModel
from .model_runner import ModelRunner, PreparedBatch
from .postprocess import Postprocessor
from .scheduler import ScheduledSeq, Scheduler
from .sequence import Sequence
from .stream import OutputStream
from .validation import RequestValidator

log = logging.getLogger(__name__)


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
        self._blocks = BlockManager(
            num_kv_blocks,
            config.block_size,
            config.enable_prefix_caching,
            config.prefix_cache_scope,
        )
        self._scheduler = Scheduler(
            self._blocks, config.max_num_seqs, config.max_num_batched_tokens
        )
        self._runner = ModelRunner(
            loaded.model, num_kv_blocks, config.block_size, torch.device(config.device)
        )
        vocab_size = loaded.model_config.vocab_size
        self._validator = RequestValidator(loaded.max_model_len, vocab_size, self._blocks)
        self._postprocessor = Postprocessor(self._scheduler, loaded.tokenizer.eos_token_ids)
        self._bridge = OutputBridge()
        self._lock = threading.Condition()
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
        self._fail_all("engine stopped")

    def ready(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._dead and not self._stopping

    def generate(self, request: GenerationRequest) -> OutputStream:
        loop = asyncio.get_running_loop()
        self._validator.check(request)
        params = request.sampling
        detok = IncrementalDetokenizer(self.tokenizer, request.prompt_token_ids, params.stop)
        seq = Sequence(request, detok, self._generator_for(params))
        stream = OutputStream(request.request_id, self.cancel)
        with self._lock:
            if self._dead or self._stopping:
                raise EngineError("the engine is not running")
            if self._scheduler.get(request.request_id) is not None:
                raise InvalidRequestError(f"request id {request.request_id!r} is already in use")
            if self._scheduler.num_waiting >= self.config.max_waiting:
                raise QueueFullError(
                    f"the waiting queue is full ({self.config.max_waiting} requests); retry later"
                )
            self._bridge.attach(seq, stream, loop)
            self._scheduler.add(seq)
            self._lock.notify()
        return stream

    async def cancel(self, request_id: str) -> None:
        """Frees the request's blocks now; a step already running ignores its result."""
        with self._lock:
            seq = self._scheduler.get(request_id)
            outputs = [self._postprocessor.finish(seq, "cancelled")] if seq is not None else []
        self._bridge.deliver(outputs)

    async def refresh_stats(self) -> None:
        """Nothing to read: `stats()` is the scheduler's own state, current at every call."""

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

    def _generator_for(self, params: SamplingParams) -> torch.Generator | None:
        """The request's own RNG (seeded, or from the engine seed): batch-independent draws."""
        if params.temperature <= 0:
            return None
        generator = torch.Generator(device=self._runner.device)
        seed = params.seed if params.seed is not None else self._seeds.getrandbits(63)
        generator.manual_seed(seed)
        return generator

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
                    prepared = self._prepare(batch)
                if isinstance(prepared, PreparedBatch):
                    self._step(batch, prepared, start)
                else:
                    self._bridge.deliver(prepared)
        except BaseException:
            log.exception("engine loop died")
            self._dead = True
            self._fail_all("engine loop died")

    def _prepare(self, batch: list[ScheduledSeq]) -> PreparedBatch | list[Delivery]:
        """The step's inputs (lock held), or, if they cannot be built, the failed outputs of
        this step's requests: the engine keeps serving the others."""
        try:
            return self._runner.prepare(batch)
        except Exception as exc:
            log.exception("preparing a step failed")
            error = f"engine error: {type(exc).__name__}: {exc}"
            return self._postprocessor.fail((i.seq for i in batch), error)

    def _step(self, batch: list[ScheduledSeq], prepared: PreparedBatch, start: float) -> None:
        """Run the model without the lock, then postprocess under it."""
        phase = _phase(batch)  # before postprocessing appends this step's tokens
        try:
            tokens = self._runner.run(prepared)
        except Exception as exc:  # fail this step's requests, keep serving the others
            log.exception("model step failed")
            with self._lock:
                outputs = self._postprocessor.fail(
                    (i.seq for i in batch), f"model error: {type(exc).__name__}: {exc}"
                )
            self._bridge.deliver(outputs)
            return
        now = time.monotonic()
        with self._lock:
            outputs = self._postprocessor.apply(batch, prepared.sampling, tokens, now)
            self._steps += 1
        # Listeners first: a client that sees its last token also sees that step's metrics.
        self._notify(StepStats(phase, now - start, len(batch), sum(i.num_tokens for i in batch)))
        self._bridge.deliver(outputs)

    def _notify(self, step: StepStats) -> None:
        for listener in self._listeners:
            try:
                listener(step)
            except Exception:
                log.exception("step listener failed")

    def _fail_all(self, error: str) -> None:
        with self._lock:
            outputs = self._postprocessor.fail(self._scheduler.sequences, error)
        self._bridge.deliver(outputs)


def _phase(batch: list[ScheduledSeq]) -> Literal["prefill", "decode", "mixed"]:
    decodes = sum(1 for i in batch if i.num_tokens == 1 and i.seq.num_output_tokens > 0)
    return "decode" if decodes == len(batch) else "prefill" if decodes == 0 else "mixed"
