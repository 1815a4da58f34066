"""`UpstreamBackend`: the `Backend` contract (inference/backend.py) served by OpenAI-compatible
upstreams (vLLM replicas) instead of the built-in engine.

Everything in front of the contract (admission, degradation, API keys, rate limits, the
recorder's per-priority latency metrics, the server span) works unchanged, because this is
only another backend. What the upstream knows and inferwatch cannot measure comes from the
upstream's own /metrics; what it does not publish (KV blocks, per-priority queues) is never
made up: `stats().kv` is None and the KV families stay absent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
from opentelemetry import propagate

from inference.backend import (
    BackendStats,
    GenerationRequest,
    InvalidRequestError,
    Priority,
    PromptTooLongError,
    StepStats,
    Tokenizer,
    UpstreamStats,
)
from inference.upstream.config import UpstreamConfig
from inference.upstream.connection import ConnectionPool
from inference.upstream.pool import RUNNING, WAITING, UpstreamPool
from inference.upstream.stream import Route, UpstreamStream
from inference.upstream.wire import completion_body

BACKEND_NAME = "vllm-proxy"


@dataclass(frozen=True)
class ModelInfo:
    """What the upstreams serve, as their /v1/models says."""

    name: str
    max_model_len: int


def discover_model(urls: Sequence[str], timeout: float) -> ModelInfo:
    """The first reachable upstream's first model (served name and context window). Called
    once when the service is built; OSError when none answers (serve exits 2 with it)."""
    problems = []
    for url in urls:
        base = url.rstrip("/").removesuffix("/v1")
        try:
            response = httpx.get(base + "/v1/models", timeout=timeout)
            response.raise_for_status()
            model = response.json()["data"][0]
            return ModelInfo(str(model["id"]), int(model.get("max_model_len") or 0))
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            problems.append(f"{base}: {type(exc).__name__}: {exc}")
    raise ConnectionError("no upstream told its model (/v1/models): " + "; ".join(problems))


class UpstreamBackend:
    backend_name = BACKEND_NAME
    device = "upstream"  # the build-info label: the accelerator is the upstream's

    def __init__(self, config: UpstreamConfig, tokenizer: Tokenizer, model: ModelInfo) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.model_name = model.name
        self.max_model_len = model.max_model_len
        self._client: httpx.AsyncClient | None = None  # health checks and /metrics
        self._connections = ConnectionPool(
            connect_timeout=config.upstream_connect_timeout,
            read_timeout=config.upstream_read_timeout,
        )  # the completions themselves
        self._pool: UpstreamPool | None = None
        self._urls = config.upstream
        self._streams: dict[str, UpstreamStream] = {}

    @property
    def pool(self) -> UpstreamPool:
        if self._pool is None:
            raise RuntimeError("the upstream backend is not started")
        return self._pool

    async def start(self) -> None:
        # httpx logs every call at info: twice a second per upstream.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        cfg = self.config
        timeout = httpx.Timeout(cfg.upstream_read_timeout, connect=cfg.upstream_connect_timeout)
        self._client = httpx.AsyncClient(timeout=timeout, trust_env=False)
        self._pool = UpstreamPool(
            self._urls,
            self._client,
            poll_seconds=cfg.upstream_poll_seconds,
            eject_failures=cfg.upstream_eject_failures,
            by_priority=cfg.upstream_priority,
        )
        await self._pool.check_all()  # ready at once when the upstreams are
        self._pool.start()

    async def stop(self) -> None:
        for stream in list(self._streams.values()):
            # A stream its reader is still inside cannot be closed from here; closing the
            # client below ends its connection, and so the request, all the same.
            with contextlib.suppress(RuntimeError):
                await stream.aclose()
        if self._pool is not None:
            await self._pool.stop()
        if self._client is not None:
            await self._client.aclose()
        await self._connections.aclose()

    def ready(self) -> bool:
        return self._pool is not None and any(u.healthy for u in self._pool.upstreams)

    def generate(self, request: GenerationRequest) -> UpstreamStream:
        self._validate(request)
        cfg = self.config
        headers: dict[str, str] = {}
        propagate.inject(headers)  # traceparent of the server span: vLLM's spans join it
        route = Route(
            pool=self.pool,
            connections=self._connections,
            body=json.dumps(
                completion_body(
                    request,
                    self.model_name,
                    self._prompt_text(request),
                    priority=cfg.upstream_priority,
                ),
                separators=(",", ":"),
            ).encode(),
            headers=headers,
            retries=cfg.upstream_retries,
            retry_after=max(1.0, cfg.upstream_poll_seconds * cfg.upstream_eject_failures),
        )
        stream = UpstreamStream(request, route)
        self._streams[request.request_id] = stream
        stream.on_close(lambda: self._streams.pop(request.request_id, None))
        return stream

    def _prompt_text(self, request: GenerationRequest) -> str | None:
        if self.config.upstream_prompt != "text":
            return None
        return self.tokenizer.decode(request.prompt_token_ids)

    def _validate(self, request: GenerationRequest) -> None:
        """What no upstream could serve, refused before it leaves (same words as the engine)."""
        prompt, params, limit = request.prompt_token_ids, request.sampling, self.max_model_len
        if not prompt:
            raise InvalidRequestError("the prompt is empty")
        if params.max_tokens < 1:
            raise InvalidRequestError(f"max_tokens must be >= 1, got {params.max_tokens}")
        total = len(prompt) + params.max_tokens
        if limit and total > limit:
            raise PromptTooLongError(
                f"prompt ({len(prompt)} tokens) + max_tokens ({params.max_tokens}) = {total} "
                f"exceeds the context window (max_model_len) of {limit} tokens"
            )
        if not params.temperature >= 0 or params.temperature == float("inf"):
            raise InvalidRequestError(
                f"temperature must be a finite number >= 0, got {params.temperature}"
            )
        if not 0 < params.top_p <= 1:
            raise InvalidRequestError(f"top_p must be in (0, 1], got {params.top_p}")

    async def cancel(self, request_id: str) -> None:
        stream = self._streams.get(request_id)
        if stream is not None:
            await stream.aclose()

    async def refresh_stats(self) -> None:
        """Each upstream's /metrics read now, so a scrape shows its figures as of the scrape."""
        if self._pool is not None:
            await self._pool.refresh_figures()

    def stats(self) -> BackendStats:
        """From each upstream's last /metrics reading (read at scrape time by
        `refresh_stats`, otherwise at most one poll old): running is vLLM's
        `num_requests_running`; waiting is vLLM's `num_requests_waiting`, each counted request
        given the priority of the request of ours it stands for (pool.waiting_pending). An
        upstream with no reading contributes nothing."""
        waiting = dict.fromkeys(Priority, 0)
        oldest = dict.fromkeys(Priority, 0.0)
        running, now = 0, time.monotonic()
        upstreams = self._pool.upstreams if self._pool is not None else []
        each = tuple(
            UpstreamStats(
                url=u.url,
                healthy=u.healthy,
                outstanding=u.in_flight,
                waiting=u.figures.get(WAITING),
                running=u.figures.get(RUNNING),
            )
            for u in upstreams
        )
        for upstream in upstreams:
            if not upstream.figures:
                continue
            running += int(upstream.figures.get(RUNNING, 0.0))
            for pending in upstream.waiting_pending(self.config.upstream_priority):
                waiting[pending.priority] += 1
                oldest[pending.priority] = max(oldest[pending.priority], now - pending.sent)
        return BackendStats(
            waiting_by_priority=waiting,
            oldest_wait_seconds_by_priority=oldest,
            running=running,
            engine_alive=self.ready(),
            kv=None,
            upstreams=each,
        )

    def add_step_listener(self, listener: Callable[[StepStats], None]) -> None:
        """No steps to report: the upstream's scheduler is its own (vLLM exports its own)."""
