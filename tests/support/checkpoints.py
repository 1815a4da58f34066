"""Small checkpoints written on the spot: a Hugging Face Llama folder (config.json, safetensors,
tokenizer.json) and the same weights as a GGUF file the way llama.cpp's converter writes it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import dequantize, quantize
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 160,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-6,
    "rope_theta": 500000.0,
    "max_position_embeddings": 512,
    "bos_token_id": 0,
    "eos_token_id": 1,
}
HEAD_DIM = 16
CHAT_TEMPLATE = (
    "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)
CORPUS = ["the quick brown fox jumps over the lazy dog", "alerts fire when latency rises"] * 20


def train_tokenizer(bos: bool = True) -> Tokenizer:
    """A byte-level BPE over a tiny corpus, with <s> (0) and </s> (1); BOS added if `bos`."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", 0)]
        )
    return tok


def random_weights(cfg: dict[str, Any], tied: bool, seed: int = 7) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    h, inter = cfg["hidden_size"], cfg["intermediate_size"]
    q, kv = cfg["num_attention_heads"] * HEAD_DIM, cfg["num_key_value_heads"] * HEAD_DIM

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen) / math.sqrt(shape[-1])

    w = {"model.embed_tokens.weight": torch.randn(cfg["vocab_size"], h, generator=gen)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w |= {
            p + "self_attn.q_proj.weight": rand(q, h),
            p + "self_attn.k_proj.weight": rand(kv, h),
            p + "self_attn.v_proj.weight": rand(kv, h),
            p + "self_attn.o_proj.weight": rand(h, q),
            p + "mlp.gate_proj.weight": rand(inter, h),
            p + "mlp.up_proj.weight": rand(inter, h),
            p + "mlp.down_proj.weight": rand(h, inter),
            p + "input_layernorm.weight": 1 + 0.1 * torch.randn(h, generator=gen),
            p + "post_attention_layernorm.weight": 1 + 0.1 * torch.randn(h, generator=gen),
        }
    w["model.norm.weight"] = 1 + 0.1 * torch.randn(h, generator=gen)
    if not tied:
        w["lm_head.weight"] = rand(cfg["vocab_size"], h) * 4
    return w


def write_hf_checkpoint(
    path: Path,
    tied: bool = False,
    sharded: bool = False,
    config: dict[str, Any] | None = None,
    template: str | None = "tokenizer_config",
    template_text: str = CHAT_TEMPLATE,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(weights, config.json as written). `template`: where the chat template goes
    (tokenizer_config, jinja, json, list) or None for a checkpoint without one."""
    path.mkdir()
    tok = train_tokenizer()
    tok.save(str(path / "tokenizer.json"))
    cfg = dict(config or CONFIG, vocab_size=tok.get_vocab_size(), tie_word_embeddings=tied)
    (path / "config.json").write_text(json.dumps(cfg))
    (path / "generation_config.json").write_text(json.dumps({"eos_token_id": [1]}))
    tok_config: dict[str, Any] = {"bos_token": "<s>", "eos_token": "</s>"}
    if template == "tokenizer_config":
        tok_config["chat_template"] = template_text
    elif template == "list":
        tok_config["chat_template"] = [
            {"name": "tool_use", "template": "unused"},
            {"name": "default", "template": template_text},
        ]
    elif template == "jinja":
        (path / "chat_template.jinja").write_text(template_text)
    elif template == "json":
        (path / "chat_template.json").write_text(json.dumps({"chat_template": template_text}))
    (path / "tokenizer_config.json").write_text(json.dumps(tok_config))
    weights = random_weights(cfg, tied)
    if sharded:
        names = sorted(weights)
        shards = {"model-00001-of-00002.safetensors": names[::2]}
        shards["model-00002-of-00002.safetensors"] = names[1::2]
        weight_map = {}
        for file, keys in shards.items():
            save_file({k: weights[k] for k in keys}, str(path / file))
            weight_map |= dict.fromkeys(keys, file)
        index = {"metadata": {}, "weight_map": weight_map}
        (path / "model.safetensors.index.json").write_text(json.dumps(index))
    else:
        save_file(weights, str(path / "model.safetensors"))
    return weights, cfg


# Hugging Face name parts -> llama.cpp's, as its converter maps them.
_GGUF_PARTS = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}
_GGUF_GLOBAL = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def gguf_name(hf_name: str) -> str:
    if hf_name in _GGUF_GLOBAL:
        return _GGUF_GLOBAL[hf_name]
    _, _, layer, *rest = hf_name.split(".")
    part, kind = ".".join(rest[:-1]), rest[-1]
    return f"blk.{layer}.{_GGUF_PARTS[part]}.{kind}"


def llama_cpp_permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf's `permute`: rotate-half rows to interleaved pairs."""
    return (
        weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def write_gguf(
    path: Path,
    weights: dict[str, torch.Tensor],
    cfg: dict[str, Any],
    tokenizer: Tokenizer,
    qtype: GGMLQuantizationType = GGMLQuantizationType.F32,
    arch: str = "llama",
    extra: dict[str, Any] | None = None,
) -> dict[str, torch.Tensor]:
    """Writes the weights as llama.cpp does (names, Q/K permuted, matrices in `qtype`, norms
    F32) and returns what a correct loader must get back: the HF weights after the
    quantization round trip."""
    writer = GGUFWriter(str(path), arch)
    p = f"{arch}."
    writer.add_uint32(p + "block_count", cfg["num_hidden_layers"])
    writer.add_uint32(p + "context_length", cfg["max_position_embeddings"])
    writer.add_uint32(p + "embedding_length", cfg["hidden_size"])
    writer.add_uint32(p + "feed_forward_length", cfg["intermediate_size"])
    writer.add_uint32(p + "attention.head_count", cfg["num_attention_heads"])
    writer.add_uint32(p + "attention.head_count_kv", cfg["num_key_value_heads"])
    writer.add_float32(p + "rope.freq_base", cfg["rope_theta"])
    writer.add_float32(p + "attention.layer_norm_rms_epsilon", cfg["rms_norm_eps"])
    writer.add_uint32(p + "vocab_size", cfg["vocab_size"])
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    extra = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt2", **(extra or {})}
    writer.add_array("tokenizer.ggml.tokens", tokens)
    types = [3 if t in ("<s>", "</s>") else 1 for t in tokens]  # 3: control (special)
    writer.add_array("tokenizer.ggml.token_type", types)
    writer.add_array("tokenizer.ggml.merges", [" ".join(m) for m in merges])
    writer.add_uint32("tokenizer.ggml.bos_token_id", 0)
    writer.add_uint32("tokenizer.ggml.eos_token_id", 1)
    writer.add_bool("tokenizer.ggml.add_bos_token", True)
    writer.add_string("tokenizer.chat_template", CHAT_TEMPLATE)
    for key, value in extra.items():
        if isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_uint32(key, value)
    expected: dict[str, torch.Tensor] = {}
    for name, tensor in weights.items():
        array = tensor.numpy().astype(np.float32)
        kind = qtype if array.ndim == 2 else GGMLQuantizationType.F32
        # Quantization blocks run along a row, so permuting rows commutes with the round trip.
        restored = dequantize(quantize(array, kind), kind).reshape(array.shape)
        expected[name] = torch.from_numpy(np.array(restored, dtype=np.float32))
        if "q_proj" in name:
            array = llama_cpp_permute(array, cfg["num_attention_heads"])
        elif "k_proj" in name:
            array = llama_cpp_permute(array, cfg["num_key_value_heads"])
        writer.add_tensor(gguf_name(name), quantize(array, kind), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return expected
