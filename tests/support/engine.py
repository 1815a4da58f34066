"""Helpers for tests that drive a real engine on the small built-in model."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from inference.backend import GenerationRequest, Priority, RequestOutput, SamplingParams
from inference.engine import AsyncEngine

WAIT_S = 30.0

EngineFactory = Callable[..., Awaitable[AsyncEngine]]  # the `make_engine` fixture


@dataclass
class Result:
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    outputs: list[RequestOutput] = field(default_factory=list)

    @property
    def final(self) -> RequestOutput:
        return self.outputs[-1]


def make_request(
    request_id: str,
    prompt: list[int],
    max_tokens: int = 16,
    priority: Priority = Priority.STANDARD,
    **sampling: Any,
) -> GenerationRequest:
    """Greedy and EOS-blind by default, so the output length is exactly `max_tokens`."""
    sampling.setdefault("temperature", 0.0)
    sampling.setdefault("ignore_eos", True)
    return GenerationRequest(
        request_id=request_id,
        prompt_token_ids=prompt,
        sampling=SamplingParams(max_tokens=max_tokens, **sampling),
        priority=priority,
    )


async def collect(stream: Any, timeout: float = WAIT_S) -> Result:
    result = Result()
    async with asyncio.timeout(timeout):
        async for out in stream:
            result.tokens += out.token_ids
            result.text += out.text
            result.outputs.append(out)
    assert result.outputs and result.final.finished
    return result


async def run_all(engine: AsyncEngine, requests: list[GenerationRequest]) -> list[Result]:
    streams = [engine.generate(r) for r in requests]
    return list(await asyncio.gather(*(collect(s) for s in streams)))


def weights_of(engine: AsyncEngine) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The engine's own weight tensors and config, in HF naming, for the reference forward."""
    model = engine._runner.model
    return dict(model.state_dict()), dataclasses.asdict(model.config)


def prompt_of(length: int, seed: int = 0) -> list[int]:
    """A BOS plus `length - 1` printable bytes that differ per seed."""
    return [256] + [32 + (seed * 31 + i * 7 + i * i) % 95 for i in range(length - 1)]
