"""A `Backend` that is another backend, but for what a subclass changes (`generate`): the
identity, lifecycle, statistics and anything else (`device`, ...) are the inner backend's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from inference.backend import (
    Backend,
    BackendStats,
    GenerationRequest,
    RequestStream,
    StepStats,
    Tokenizer,
)


class DelegatingBackend:
    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    @property
    def tokenizer(self) -> Tokenizer:
        return self.inner.tokenizer

    @property
    def max_model_len(self) -> int:
        return self.inner.max_model_len

    @property
    def backend_name(self) -> str:
        return self.inner.backend_name

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    def ready(self) -> bool:
        return self.inner.ready()

    def generate(self, request: GenerationRequest) -> RequestStream:
        return self.inner.generate(request)

    async def cancel(self, request_id: str) -> None:
        await self.inner.cancel(request_id)

    def stats(self) -> BackendStats:
        return self.inner.stats()

    async def refresh_stats(self) -> None:
        await self.inner.refresh_stats()

    def add_step_listener(self, listener: Callable[[StepStats], None]) -> None:
        self.inner.add_step_listener(listener)
