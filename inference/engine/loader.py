"""Builds the model and tokenizer: seeded random weights, or a local Hugging Face checkpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from .config import EngineConfig, ModelConfig
from .model import LlamaForCausalLM, init_random_
from .tokenizer import ByteTokenizer, HFTokenizer

BUILTIN_MAX_MODEL_LEN = 2048


@dataclass
class LoadedModel:
    model: LlamaForCausalLM
    model_config: ModelConfig
    tokenizer: ByteTokenizer | HFTokenizer
    max_model_len: int


def load_model(config: EngineConfig) -> LoadedModel:
    device = torch.device(config.device)
    dtype = config.torch_dtype
    if config.model_path is None:
        cfg = ModelConfig()
        model = LlamaForCausalLM(cfg)
        init_random_(model, config.seed)
        tokenizer: ByteTokenizer | HFTokenizer = ByteTokenizer()
        max_len = BUILTIN_MAX_MODEL_LEN
    else:
        path = Path(config.model_path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} has no config.json (expected a HF Llama checkpoint)")
        cfg = ModelConfig.from_hf(path)
        with torch.device("meta"):
            model = LlamaForCausalLM(cfg)
        _load_safetensors(model, path)
        tokenizer = HFTokenizer(path)
        max_len = cfg.max_position_embeddings
    if config.max_model_len is not None:
        max_len = min(max_len, config.max_model_len)
    model = model.to(device=device, dtype=dtype).eval()
    model.requires_grad_(False)
    model.setup_rotary(max_len, dtype, device)
    return LoadedModel(model, cfg, tokenizer, max_len)


def _load_safetensors(model: LlamaForCausalLM, path: Path) -> None:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (path / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise FileNotFoundError(f"{path} has neither model.safetensors nor its index")
    state: dict[str, torch.Tensor] = {}
    for name in files:
        state.update(load_file(str(path / name)))
    state = {k: v for k, v in state.items() if not k.endswith("rotary_emb.inv_freq")}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if model.config.tie_word_embeddings:
        missing = [k for k in missing if k != "lm_head.weight"]
        model.tie_weights()
    if missing or unexpected:
        raise ValueError(f"checkpoint mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
