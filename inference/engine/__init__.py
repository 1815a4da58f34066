"""The built-in KV-cache-aware engine: paged attention, prefix cache, continuous batching."""

from __future__ import annotations

import torch

from .config import DEFAULT_CPU_KV_BLOCKS, EngineConfig, ModelConfig
from .engine import AsyncEngine
from .loader import load_model

__all__ = ["AsyncEngine", "EngineConfig", "build_engine"]


def build_engine(config: EngineConfig | None = None) -> AsyncEngine:
    """Load the model and allocate the KV cache; the engine thread starts with `start()`."""
    config = config or EngineConfig()
    loaded = load_model(config)
    num_blocks = config.num_kv_blocks or _default_num_blocks(
        config, loaded.model_config, loaded.max_model_len
    )
    return AsyncEngine(config, loaded, num_blocks)


def _default_num_blocks(config: EngineConfig, cfg: ModelConfig, max_model_len: int) -> int:
    if config.device == "cpu":
        return DEFAULT_CPU_KV_BLOCKS
    free, _ = torch.cuda.mem_get_info()
    per_block = (
        2 * cfg.num_hidden_layers * config.block_size * cfg.num_key_value_heads * cfg.head_dim
    ) * torch.empty(0, dtype=config.torch_dtype).element_size()
    # More than every running sequence at full context could use is idle memory.
    useful = config.max_num_seqs * -(-max_model_len // config.block_size)
    return max(1, min(useful, int(free * config.gpu_memory_fraction) // per_block))
