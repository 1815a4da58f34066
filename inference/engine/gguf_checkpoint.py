"""A GGUF file (llama.cpp's format) as a Llama model: hyperparameters from the metadata,
llama.cpp tensor names mapped onto Hugging Face's, every tensor dequantized to float32 by the
`gguf` package.

llama.cpp's converter permutes the rows of Q and K per head, from Hugging Face's rotate-half
rotary layout into its interleaved one; the model here rotates halves, so `unpermute` undoes
it, as transformers' GGUF loader does (without it the model writes fluent nonsense).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gguf import GGUFReader, ReaderTensor
from gguf.quants import dequantize

from .config import ModelConfig

GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_MISSING = object()


class _Reader(GGUFReader):
    """GGUFReader, reading its fields through a plain ndarray view of the memory map: the
    package slices the `np.memmap` once per string, and a memmap slice costs ~10x an ndarray
    slice (about 4 s of SmolLM2's 98 000 vocabulary and merge strings)."""

    def _get(
        self, offset: int, dtype: Any, count: int = 1, override_order: Any = None
    ) -> np.ndarray:
        plain = self.__dict__.get("_plain")
        if plain is None:
            plain = self.__dict__["_plain"] = self.data.view(np.ndarray)
        count = int(count)
        end = offset + np.dtype(dtype).itemsize * count
        arr = plain[offset:end].view(dtype=dtype)[:count]
        order = self.byte_order if override_order is None else override_order
        return arr if order == "I" else arr.view(arr.dtype.newbyteorder(order))


class GGUFFile:
    """The parsed file: metadata by key, tensors by name."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.reader = _Reader(path)
        except (ValueError, KeyError, IndexError, OSError) as exc:
            raise ValueError(f"{path}: not a readable GGUF file ({exc})") from None
        self.tensors: dict[str, ReaderTensor] = {t.name: t for t in self.reader.tensors}

    def get(self, key: str, default: Any = _MISSING) -> Any:
        field = self.reader.fields.get(key)
        if field is None:
            if default is _MISSING:
                raise ValueError(f"{self.path}: metadata {key} is missing")
            return default
        return field.contents()

    def model_config(self) -> ModelConfig:
        arch = self.get("general.architecture")
        if arch != "llama":
            raise ValueError(f"{self.path}: architecture {arch!r} is not supported (llama is)")
        p = "llama."
        hidden, heads = self._int(p + "embedding_length"), self._int(p + "attention.head_count")
        kv_heads = self._int(p + "attention.head_count_kv", heads)
        head_dim = self._int(p + "attention.key_length", hidden // heads)
        if self._int(p + "attention.value_length", head_dim) != head_dim:
            raise ValueError(f"{self.path}: key and value head sizes differ")
        if self._int(p + "rope.dimension_count", head_dim) != head_dim:
            raise ValueError(f"{self.path}: partial rotary embeddings are not supported")
        scaling = self.get(p + "rope.scaling.type", "none")
        if scaling != "none" or "rope_freqs.weight" in self.tensors:
            kind = scaling if scaling != "none" else "rope_freqs (llama3)"
            raise ValueError(f"{self.path}: rope scaling {kind} is not supported")
        if self._int(p + "expert_count", 0):
            raise ValueError(f"{self.path}: mixture-of-experts models are not supported")
        vocab = self._int(p + "vocab_size", 0) or len(self.get("tokenizer.ggml.tokens"))
        return ModelConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=self._int(p + "feed_forward_length"),
            num_hidden_layers=self._int(p + "block_count"),
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            head_dim=head_dim,
            rms_norm_eps=float(self.get(p + "attention.layer_norm_rms_epsilon")),
            rope_theta=float(self.get(p + "rope.freq_base", 10000.0)),
            max_position_embeddings=self._int(p + "context_length"),
            tie_word_embeddings="output.weight" not in self.tensors,
            attention_bias="blk.0.attn_q.bias" in self.tensors,
        )

    def _int(self, key: str, default: Any = _MISSING) -> int:
        value = self.get(key, default)
        if not isinstance(value, int | np.integer):  # per-layer arrays: not a plain Llama
            raise ValueError(f"{self.path}: metadata {key}={value!r} is not a single integer")
        return int(value)

    def state_dict(self, cfg: ModelConfig, threads: int) -> dict[str, torch.Tensor]:
        """float32 tensors under Hugging Face names, Q and K rows back in rotate-half order."""
        names = {t: self._hf_name(t) for t in self.tensors}
        with ThreadPoolExecutor(max(1, threads)) as pool:  # numpy dequantizes without the GIL
            arrays = pool.map(self._float32, self.tensors.values())
            state = {names[name]: array for name, array in zip(self.tensors, arrays, strict=True)}
        for key, array in state.items():
            if ".self_attn.q_proj." in key:
                state[key] = unpermute(array, cfg.num_attention_heads)
            elif ".self_attn.k_proj." in key:
                state[key] = unpermute(array, cfg.num_key_value_heads)
        return {k: torch.from_numpy(_owned(v)) for k, v in state.items()}

    def _hf_name(self, name: str) -> str:
        if name in GLOBAL_NAMES:
            return GLOBAL_NAMES[name]
        parts = name.split(".")
        if len(parts) == 4 and parts[0] == "blk" and parts[2] in BLOCK_NAMES:
            return f"model.layers.{parts[1]}.{BLOCK_NAMES[parts[2]]}.{parts[3]}"
        raise ValueError(f"{self.path}: tensor {name} has no place in a Llama model")

    def _float32(self, tensor: ReaderTensor) -> np.ndarray:
        try:
            values = dequantize(tensor.data, tensor.tensor_type)
        except NotImplementedError:
            kind = tensor.tensor_type.name
            raise ValueError(
                f"{self.path}: {tensor.name} is {kind}, which gguf cannot dequantize"
            ) from None
        # GGUF lists dimensions innermost first; torch wants [rows, columns].
        return values.astype(np.float32, copy=False).reshape(tuple(reversed(tensor.shape)))


def _owned(array: np.ndarray) -> np.ndarray:
    """A writable, contiguous array: float32 tensors come back as views of the read-only map."""
    if array.flags.writeable and array.flags.c_contiguous:
        return array
    return np.array(array, dtype=np.float32, order="C")


def unpermute(weight: np.ndarray, num_heads: int) -> np.ndarray:
    """Rows of each head from llama.cpp's (pairs interleaved) order back to (halves)."""
    half = weight.shape[0] // num_heads // 2
    grouped = weight.reshape(num_heads, half, 2, *weight.shape[1:])
    return grouped.swapaxes(1, 2).reshape(weight.shape)
