"""Engine and model configuration: what a deployment chooses vs what a checkpoint dictates."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .block_manager import PREFIX_CACHE_SCOPES
from .models import BUILTIN_MODELS, DEFAULT_MODEL, TINY

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    # Not for serving: exactness tests use it so batch-shape rounding noise cannot flip an argmax.
    "float64": torch.float64,
}
DEVICES = ("cpu", "cuda")
SERVING_DTYPES = ("float32", "float16", "bfloat16")
DEFAULT_CPU_KV_BLOCKS = 512
QUANTIZATIONS = ("int8",)


@dataclass
class EngineConfig:
    """What an operator picks (`inferwatch serve` / `inferwatch engine` flags)."""

    model: str | None = field(
        default=None,
        metadata={"help": f"built-in model: {DEFAULT_MODEL} (the default) or {TINY} (random "
                  "weights, for tests and quick benchmarks); not with --model-path",
                  "choices": tuple(BUILTIN_MODELS)},
    )  # fmt: skip
    model_path: str | None = field(
        default=None,
        metadata={"help": "a .gguf file or a local Hugging Face Llama checkpoint folder"},
    )
    chat_template: str | None = field(
        default=None,
        metadata={"help": "a Jinja chat template file, used instead of the checkpoint's own"},
    )
    quantization: str | None = field(
        default=None,
        metadata={"help": "int8: dynamic int8 linear layers (PyTorch's, CPU, float32)",
                  "choices": QUANTIZATIONS},
    )  # fmt: skip
    device: str = field(default="cpu", metadata={"help": "torch device", "choices": DEVICES})
    dtype: str = field(
        default="float32", metadata={"help": "weights and KV dtype", "choices": SERVING_DTYPES}
    )
    num_kv_blocks: int | None = field(
        default=None,
        metadata={"help": f"KV cache blocks (default {DEFAULT_CPU_KV_BLOCKS} on CPU, sized "
                  "from free memory on CUDA)"},
    )  # fmt: skip
    block_size: int = field(default=16, metadata={"help": "tokens per KV block"})
    max_num_seqs: int = field(default=64, metadata={"help": "max running sequences"})
    max_num_batched_tokens: int = field(
        default=2048, metadata={"help": "token budget of one engine step (chunked prefill)"}
    )
    max_waiting: int = field(
        default=256, metadata={"help": "queue bound; past it requests get 503 + Retry-After"}
    )
    enable_prefix_caching: bool = field(
        default=True, metadata={"help": "reuse KV blocks of shared prompt prefixes"}
    )
    prefix_cache_scope: str = field(
        default="global",
        metadata={"help": "who shares cached prompt blocks: everyone, or one API key tenant "
                  "(no cross-tenant hits, at a cost in hit rate)", "choices": PREFIX_CACHE_SCOPES},
    )  # fmt: skip
    seed: int = field(default=0, metadata={"help": "seed of unseeded sampling (reproducible)"})
    model_name: str | None = field(
        default=None, metadata={"help": "served model name (default: from the checkpoint)"}
    )
    num_threads: int | None = field(
        default=None,
        metadata={"help": "torch CPU threads (default: all cores but one, for the event loop)"},
    )
    max_model_len: int | None = field(
        default=None, metadata={"help": "cap of the checkpoint's context (and RoPE tables)"}
    )
    gpu_memory_fraction: float = field(
        default=0.5, metadata={"help": "share of free GPU memory given to the KV cache"}
    )

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.prefix_cache_scope not in PREFIX_CACHE_SCOPES:
            raise ValueError(
                f"prefix_cache_scope must be one of {', '.join(PREFIX_CACHE_SCOPES)}, "
                f"got {self.prefix_cache_scope!r}"
            )
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but torch sees no CUDA device")
        if self.model is not None and self.model not in BUILTIN_MODELS:
            names = ", ".join(BUILTIN_MODELS)
            raise ValueError(f"model must be one of {names}, got {self.model!r}")
        if self.quantization is not None and self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be int8, got {self.quantization!r}")
        for name in ("block_size", "max_num_seqs", "max_num_batched_tokens", "max_waiting"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("num_kv_blocks", "max_model_len", "num_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def check_combination(self) -> None:
        """Choices that exclude each other: checked when the engine is built, so each field
        can still be set on its own (flags and variables come from different places)."""
        if self.model is not None and self.model_path is not None:
            raise ValueError("give --model (a built-in) or --model-path (a checkpoint), not both")
        if self.quantization == "int8" and (self.device != "cpu" or self.dtype != "float32"):
            raise ValueError("int8 quantization runs on --device cpu with --dtype float32")

    @property
    def builtin_model(self) -> str | None:
        """The built-in to load: the one named, else the default unless a checkpoint is."""
        if self.model_path is not None:
            return None
        return self.model or DEFAULT_MODEL

    @property
    def served_model_name(self) -> str:
        if self.model_name:
            return self.model_name
        if self.model_path:
            path = Path(self.model_path).resolve()
            return path.stem if path.suffix == ".gguf" else path.name
        return BUILTIN_MODELS[self.builtin_model or DEFAULT_MODEL].served_name

    def cpu_threads(self) -> int:
        if self.num_threads is not None:
            return max(1, self.num_threads)
        return max(1, (os.cpu_count() or 2) - 1)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a Llama-family decoder (the subset of HF LlamaConfig the model uses)."""

    vocab_size: int = 258
    hidden_size: int = 256
    intermediate_size: int = 688
    num_hidden_layers: int = 4
    num_attention_heads: int = 8
    num_key_value_heads: int = 2
    head_dim: int = 32
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    # Llama 3.1+ "llama3" RoPE scaling: (factor, low_freq_factor, high_freq_factor,
    # original_max_position_embeddings); None means plain RoPE.
    rope_llama3: tuple[float, float, float, int] | None = None
