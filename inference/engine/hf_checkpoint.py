"""A local Hugging Face Llama checkpoint folder: config.json, safetensors, tokenizer, template.

Anything the model cannot represent is refused with one line naming the file (ValueError or
OSError: `inferwatch serve` exits 2 with it), never served with settings half understood.
Rotary settings come in two layouts: transformers 5 writes `rope_parameters` (with
`rope_theta` and `rope_type` inside), older releases top-level `rope_theta` / `rope_scaling`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

from .chat_template import ChatTemplate, find_chat_template
from .config import ModelConfig
from .model import LlamaForCausalLM
from .tokenizer import HFTokenizer

ARCHITECTURE = "LlamaForCausalLM"
DEFAULT_ROPE_THETA = 10000.0
LLAMA3_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
REQUIRED = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers")


def read_json(file: Path) -> dict[str, Any]:
    try:
        raw = json.loads(file.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{file}: missing") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{file}: unreadable JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{file}: not a JSON object")
    return raw


def read_model_config(folder: Path) -> ModelConfig:
    file = folder / "config.json"
    raw = read_json(file)
    model_type, archs = raw.get("model_type"), raw.get("architectures") or []
    if model_type != "llama" or any(a != ARCHITECTURE for a in archs):
        raise ValueError(
            f"{file}: model_type {model_type!r}, architectures {archs} is not a Llama checkpoint "
            f"(the engine runs model_type 'llama', {ARCHITECTURE})"
        )
    for key in (*REQUIRED, "num_attention_heads"):
        if not isinstance(raw.get(key), int):
            raise ValueError(f"{file}: {key} is missing or not an integer")
    for key, supported in (("hidden_act", "silu"), ("mlp_bias", False), ("pretraining_tp", 1)):
        if raw.get(key, supported) != supported:
            raise ValueError(f"{file}: {key}={raw[key]!r} is not supported (only {supported!r})")
    if raw.get("quantization_config"):
        method = raw["quantization_config"].get("quant_method", "?")
        raise ValueError(f"{file}: quantized checkpoints ({method}) are not supported")
    theta, llama3 = rope_settings(raw, file)
    heads = raw["num_attention_heads"]
    return ModelConfig(
        vocab_size=raw["vocab_size"],
        hidden_size=raw["hidden_size"],
        intermediate_size=raw["intermediate_size"],
        num_hidden_layers=raw["num_hidden_layers"],
        num_attention_heads=heads,
        num_key_value_heads=raw.get("num_key_value_heads") or heads,
        head_dim=raw.get("head_dim") or raw["hidden_size"] // heads,
        rms_norm_eps=raw.get("rms_norm_eps", 1e-6),
        rope_theta=theta,
        max_position_embeddings=raw.get("max_position_embeddings", 2048),
        tie_word_embeddings=raw.get("tie_word_embeddings", False),
        attention_bias=raw.get("attention_bias", False),
        rope_llama3=llama3,
    )


def rope_settings(
    raw: dict[str, Any], file: Path
) -> tuple[float, tuple[float, float, float, int] | None]:
    """(rope_theta, llama3 scaling or None) from either config.json layout."""
    params = raw.get("rope_parameters")
    if params is not None:
        if not isinstance(params, dict) or any(isinstance(v, dict) for v in params.values()):
            raise ValueError(f"{file}: rope_parameters per layer type are not supported")
        theta = params.get("rope_theta", raw.get("rope_theta", DEFAULT_ROPE_THETA))
        if "rope_theta" in raw and raw["rope_theta"] != theta:
            raise ValueError(
                f"{file}: rope_theta {raw['rope_theta']} and rope_parameters.rope_theta {theta} "
                "disagree"
            )
        scaling: dict[str, Any] = params
    else:
        theta = raw.get("rope_theta", DEFAULT_ROPE_THETA)
        scaling = raw.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind not in ("default", "llama3"):
        raise ValueError(f"{file}: rope type {kind!r} is not supported (default and llama3 are)")
    partial = scaling.get("partial_rotary_factor", raw.get("partial_rotary_factor", 1.0))
    if partial != 1.0:
        raise ValueError(f"{file}: partial_rotary_factor {partial} is not supported")
    if not isinstance(theta, int | float) or theta <= 0:
        raise ValueError(f"{file}: rope_theta {theta!r} is not a positive number")
    if kind == "default":
        return float(theta), None
    missing = [k for k in LLAMA3_KEYS if k not in scaling]
    if missing:
        raise ValueError(f"{file}: llama3 rope scaling lacks {', '.join(missing)}")
    factor, low, high, old_len = (scaling[k] for k in LLAMA3_KEYS)
    return float(theta), (float(factor), float(low), float(high), int(old_len))


def read_tokenizer(folder: Path, chat_template: ChatTemplate | None) -> HFTokenizer:
    """tokenizer.json, EOS ids from generation_config.json else config.json, and the chat
    template (the operator's, else the checkpoint's)."""
    file = folder / "tokenizer.json"
    if not file.is_file():
        also = " (a SentencePiece tokenizer.model alone is not supported)"
        has_sp = (folder / "tokenizer.model").is_file()
        raise FileNotFoundError(f"{file}: missing; the engine reads tokenizer.json{also * has_sp}")
    try:
        tok = Tokenizer.from_file(str(file))
    except Exception as exc:  # the Rust side raises plain Exception with a multi-line text
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{file}: unreadable tokenizer ({reason})") from None
    bos, eos = _special_strings(folder, tok)
    template = chat_template or find_chat_template(folder)
    return HFTokenizer(tok, _eos_ids(folder), template, bos, eos)


def _eos_ids(folder: Path) -> list[int]:
    for name in ("generation_config.json", "config.json"):
        file = folder / name
        if not file.is_file():
            continue
        value = read_json(file).get("eos_token_id")
        if value is None:
            continue
        return [int(v) for v in value] if isinstance(value, list) else [int(value)]
    return []


def _special_strings(folder: Path, tok: Tokenizer) -> tuple[str, str]:
    """BOS and EOS as text, for templates that write `{{ bos_token }}`."""
    found: dict[str, str] = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        file = folder / name
        if not file.is_file():
            continue
        raw = read_json(file)
        for key in ("bos_token", "eos_token"):
            value = raw.get(key)
            if isinstance(value, dict):  # {"content": "<s>", "lstrip": false, ...}
                value = value.get("content")
            if isinstance(value, str):
                found.setdefault(key, value)
    config = read_json(folder / "config.json")
    for key in ("bos_token", "eos_token"):
        token_id = config.get(key + "_id")
        if key not in found and isinstance(token_id, int):
            found[key] = tok.id_to_token(token_id) or ""
    return found.get("bos_token", ""), found.get("eos_token", "")


def load_safetensors(model: LlamaForCausalLM, folder: Path) -> None:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(read_json(index)["weight_map"].values()))
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        bin_only = " (pytorch_model.bin is not read: convert it to safetensors)"
        has_bin = any(folder.glob("pytorch_model*.bin"))
        raise FileNotFoundError(
            f"{folder}: neither model.safetensors nor its index{bin_only * has_bin}"
        )
    state: dict[str, torch.Tensor] = {}
    for name in files:
        state.update(load_file(str(folder / name)))
    state = {k: v for k, v in state.items() if not k.endswith("rotary_emb.inv_freq")}
    assign_weights(model, state)


def assign_weights(model: LlamaForCausalLM, state: dict[str, torch.Tensor]) -> None:
    """Put HF-named tensors into a model built `uninitialized()`; a missing or extra tensor
    is an error."""
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if model.config.tie_word_embeddings:
        missing = [k for k in missing if k != "lm_head.weight"]
        model.tie_weights()
    if missing or unexpected:
        raise ValueError(f"checkpoint mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
