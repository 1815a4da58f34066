"""The built-in KV-cache-aware engine: paged attention, prefix cache, continuous batching."""

from __future__ import annotations

from .config import EngineConfig
from .engine import AsyncEngine
from .loader import load_model
from .model_runner import kv_cache_blocks

__all__ = ["AsyncEngine", "EngineConfig", "build_engine"]


def build_engine(config: EngineConfig | None = None) -> AsyncEngine:
    """Load the model and allocate the KV cache; the engine thread starts with `start()`."""
    config = config or EngineConfig()
    loaded = load_model(config)
    return AsyncEngine(config, loaded, kv_cache_blocks(config, loaded))
