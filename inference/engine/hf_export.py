"""Writes a built-in model as a Hugging Face folder (config.json, model.safetensors,
tokenizer.json, tokenizer_config.json with the chat template, generation_config.json).

Why: another server (vLLM) loads only such folders, and nothing may be downloaded, so the
project writes one from the models it already has: the tiny model (its seeded random weights,
its byte tokenizer as a byte-level `tokenizers` model whose ids are the byte values) or
SmolLM2 (dequantized from the GGUF file, the tokenizer rebuilt from its metadata). The folder
is also what `inferwatch serve --model-path DIR` reads, so both servers hold the same model.

    python -m inference.engine.hf_export --model tiny OUT_DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

from .config import EngineConfig, ModelConfig
from .loader import load_model
from .models import BUILTIN_MODELS, TINY
from .tokenizer import BOS_ID, EOS_ID, ByteTokenizer, HFTokenizer

BOS, EOS = "<s>", "</s>"
# The tiny model's role-tagged template (tokenizer.simple_chat_template) in Jinja.
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def byte_level_tokenizer() -> Tokenizer:
    """The byte tokenizer as a `tokenizers` model: id b is byte b, 256 BOS, 257 EOS; BOS is
    prepended to a plain encode, as ByteTokenizer.encode does."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    by_byte = _bytes_to_unicode()
    assert set(by_byte.values()) == set(alphabet)
    vocab = {by_byte[b]: b for b in range(256)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(BOS, special=True), AddedToken(EOS, special=True)])
    assert tok.token_to_id(BOS) == BOS_ID and tok.token_to_id(EOS) == EOS_ID
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, BOS_ID)]
    )
    return tok


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for every byte (what ByteLevel pre-tokenizes bytes into)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += range(ord("®"), ord("ÿ") + 1)
    out, extra = {b: chr(b) for b in keep}, 0
    for b in range(256):
        if b not in out:
            out[b] = chr(256 + extra)
            extra += 1
    return out


def config_json(cfg: ModelConfig, eos_ids: list[int], bos_id: int | None) -> dict[str, Any]:
    """The HF LlamaConfig fields hf_checkpoint.read_model_config reads back (old rope layout,
    which every transformers and vLLM release reads)."""
    out: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "max_position_embeddings": cfg.max_position_embeddings,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "attention_bias": cfg.attention_bias,
        "mlp_bias": False,
        "torch_dtype": "float32",
        "bos_token_id": bos_id,
        "eos_token_id": eos_ids[0] if len(eos_ids) == 1 else eos_ids,
    }
    if cfg.rope_llama3 is not None:
        factor, low, high, old_len = cfg.rope_llama3
        out["rope_scaling"] = {
            "rope_type": "llama3",
            "factor": factor,
            "low_freq_factor": low,
            "high_freq_factor": high,
            "original_max_position_embeddings": old_len,
        }
    return out


def write_hf_folder(model_name: str, folder: Path, seed: int | None = None) -> Path:
    """Write built-in `model_name` (tiny with `seed`, else the engine's default seed) to
    `folder` (created); returns the folder."""
    if model_name not in BUILTIN_MODELS:
        raise ValueError(f"unknown built-in model {model_name!r} ({', '.join(BUILTIN_MODELS)})")
    config = EngineConfig(model=model_name) if seed is None else EngineConfig(model_name, seed=seed)
    loaded = load_model(config)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = loaded.tokenizer
    if isinstance(tokenizer, ByteTokenizer):
        tok, template, bos, eos = byte_level_tokenizer(), TINY_CHAT_TEMPLATE, BOS, EOS
        eos_ids, bos_id = [EOS_ID], BOS_ID
    else:
        assert isinstance(tokenizer, HFTokenizer) and model_name != TINY
        tok = tokenizer._tok  # noqa: SLF001 - the rebuilt tokenizer is what gets written
        template = tokenizer.chat_template.text if tokenizer.chat_template else None
        bos, eos = tokenizer.bos_token, tokenizer.eos_token
        eos_ids = sorted(tokenizer.eos_token_ids)
        bos_id = tok.token_to_id(bos) if bos else None
    tok.save(str(folder / "tokenizer.json"))
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in _weights(loaded.model)}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    cfg = config_json(loaded.model_config, eos_ids, bos_id)
    cfg["max_position_embeddings"] = loaded.max_model_len
    _write(folder / "config.json", cfg)
    tok_config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos or None,
        "eos_token": eos or None,
        "model_max_length": loaded.max_model_len,
        "clean_up_tokenization_spaces": False,
    }
    if template is not None:
        tok_config["chat_template"] = template
    _write(folder / "tokenizer_config.json", tok_config)
    _write(folder / "generation_config.json", {"bos_token_id": bos_id, "eos_token_id": eos_ids})
    return folder


def _weights(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """HF-named tensors; a tied head is written once (as HF does), as the embedding."""
    tied = getattr(model.config, "tie_word_embeddings", False)
    return [(k, v) for k, v in model.state_dict().items() if not (tied and k == "lm_head.weight")]


def _write(file: Path, value: dict[str, Any]) -> None:
    file.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=TINY, choices=tuple(BUILTIN_MODELS))
    parser.add_argument("--seed", type=int, default=None, help="the tiny model's seed")
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    try:
        print(write_hf_folder(args.model, args.folder, args.seed))
    except (ValueError, OSError) as exc:
        print(f"hf_export: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
