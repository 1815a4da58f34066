"""Loading a local Hugging Face Llama checkpoint: HF tensor names, sharding, tied embeddings,
tokenizer.json and generation_config; greedy output equals the reference forward of the files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from tests.support.engine import EngineFactory, make_request, run_all
from tests.support.reference import greedy

CONFIG = {
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
CHAT_TEMPLATE = (
    "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)
CORPUS = ["the quick brown fox jumps over the lazy dog", "alerts fire when latency rises"] * 20


def _tokenizer(path: Path) -> int:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    tok.save(str(path / "tokenizer.json"))
    return tok.get_vocab_size()


def _weights(cfg: dict, tied: bool) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    h, inter, d = cfg["hidden_size"], cfg["intermediate_size"], 16
    q, kv = cfg["num_attention_heads"] * d, cfg["num_key_value_heads"] * d

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


def _write_checkpoint(path: Path, tied: bool, sharded: bool) -> tuple[dict, dict]:
    path.mkdir()
    cfg = dict(CONFIG, vocab_size=_tokenizer(path), tie_word_embeddings=tied)
    (path / "config.json").write_text(json.dumps(cfg))
    (path / "generation_config.json").write_text(json.dumps({"eos_token_id": [1]}))
    (path / "tokenizer_config.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}))
    weights = _weights(cfg, tied)
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


@pytest.mark.parametrize(("tied", "sharded"), [(False, False), (True, True)])
async def test_checkpoint_output_equals_reference(
    make_engine: EngineFactory, tmp_path: Path, tied: bool, sharded: bool
) -> None:
    model_dir = tmp_path / "tiny-llama"
    weights, cfg = _write_checkpoint(model_dir, tied, sharded)
    engine = await make_engine(model_path=str(model_dir), dtype="float64")

    assert engine.model_name == "tiny-llama"
    assert engine.max_model_len == 512
    assert engine.tokenizer.eos_token_id == 1
    prompt = engine.tokenizer.encode("the lazy fox rises")
    assert prompt[0] == 0
    assert engine.tokenizer.decode(prompt) == "the lazy fox rises"
    chat = engine.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}])
    assert chat == "[user] hi\n[assistant] "

    results = await run_all(engine, [make_request(f"r{i}", prompt[: 3 + i], 10) for i in range(3)])
    ref_weights = {k: v.double() for k, v in weights.items()}
    for i, result in enumerate(results):
        assert result.tokens == greedy(ref_weights, cfg, prompt[: 3 + i], 10)
    assert len({tuple(r.tokens) for r in results}) > 1


async def test_missing_tensor_is_a_clear_error(tmp_path: Path) -> None:
    from inference.engine import EngineConfig, build_engine

    model_dir = tmp_path / "broken"
    weights, _ = _write_checkpoint(model_dir, tied=False, sharded=False)
    del weights["model.layers.1.mlp.up_proj.weight"]
    save_file(weights, str(model_dir / "model.safetensors"))
    with pytest.raises(ValueError, match="missing \\['model.layers.1.mlp.up_proj.weight'\\]"):
        build_engine(EngineConfig(model_path=str(model_dir)))


def test_llama3_rope_scaling(tmp_path: Path) -> None:
    """Llama 3.1-style checkpoints load; long wavelengths are slowed, short ones untouched."""
    from inference.engine import EngineConfig, build_engine
    from inference.engine.model import llama3_inv_freq

    model_dir = tmp_path / "llama31"
    _write_checkpoint(model_dir, tied=False, sharded=False)
    raw = json.loads((model_dir / "config.json").read_text())
    raw["rope_scaling"] = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    }
    (model_dir / "config.json").write_text(json.dumps(raw))
    engine = build_engine(EngineConfig(model_path=str(model_dir), max_model_len=128))
    assert engine.max_model_len == 128
    model = engine._runner.model
    assert model.config.rope_llama3 == (8.0, 1.0, 4.0, 64)
    assert model.rope_cos.shape == (128, 16)

    inv = 1.0 / 500000.0 ** (torch.arange(0, 16, 2, dtype=torch.float64) / 16)
    scaled = llama3_inv_freq(inv, 8.0, 1.0, 4.0, 64)
    wavelen = 2 * math.pi / inv
    short, long_ = wavelen < 64 / 4, wavelen > 64
    assert short.any() and long_.any()
    assert torch.equal(scaled[short], inv[short])
    assert torch.allclose(scaled[long_], inv[long_] / 8)
    medium = ~short & ~long_
    assert torch.all((scaled[medium] < inv[medium]) & (scaled[medium] > inv[medium] / 8))

    raw["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0}
    (model_dir / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="not supported"):
        build_engine(EngineConfig(model_path=str(model_dir)))
