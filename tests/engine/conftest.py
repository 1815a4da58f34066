"""Real engines, started per test and always stopped: the random tiny model unless a test names
a checkpoint (`model_path=`) or another built-in (`model=`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from inference.engine import AsyncEngine, EngineConfig, build_engine
from tests.support.engine import WAIT_S, EngineFactory


@pytest.fixture
async def make_engine() -> AsyncIterator[EngineFactory]:
    engines: list[AsyncEngine] = []

    async def factory(start: bool = True, **overrides: Any) -> AsyncEngine:
        if "model_path" not in overrides:
            overrides.setdefault("model", "tiny")
        engine = build_engine(EngineConfig(**overrides))
        engines.append(engine)
        if start:
            await engine.start()
        return engine

    yield factory
    for engine in engines:
        await asyncio.wait_for(engine.stop(), WAIT_S)
