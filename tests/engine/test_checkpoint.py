"""Loading a local Hugging Face Llama checkpoint: HF tensor names, sharding, tied embeddings,
tokenizer.json and generation_config; greedy output equals the reference forward of the files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.support.checkpoints import write_hf_checkpoint
from tests.support.engine import EngineFactory, make_request, run_all
from tests.support.reference import greedy_choices


@pytest.mark.parametrize(("tied", "sharded"), [(False, False), (True, True)])
async def test_checkpoint_output_equals_reference(
    make_engine: EngineFactory, tmp_path: Path, tied: bool, sharded: bool
) -> None:
    model_dir = tmp_path / "tiny-llama"
    weights, cfg = write_hf_checkpoint(model_dir, tied, sharded)
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
        assert len(result.tokens) == 10
        assert result.tokens == greedy_choices(ref_weights, cfg, prompt[: 3 + i], result.tokens)
    assert len({tuple(r.tokens) for r in results}) > 1


async def test_missing_tensor_is_a_clear_error(tmp_path: Path) -> None:
    from inference.engine import EngineConfig, build_engine

    model_dir = tmp_path / "broken"
    weights, _ = write_hf_checkpoint(model_dir, tied=False, sharded=False)
    del weights["model.layers.1.mlp.up_proj.weight"]
    save_file(weights, str(model_dir / "model.safetensors"))
    with pytest.raises(ValueError, match="missing \\['model.layers.1.mlp.up_proj.weight'\\]"):
        build_engine(EngineConfig(model_path=str(model_dir)))


def test_llama3_rope_scaling(tmp_path: Path) -> None:
    """Llama 3.1-style checkpoints load; long wavelengths are slowed, short ones untouched."""
    from inference.engine import EngineConfig, build_engine
    from inference.engine.model import llama3_inv_freq

    model_dir = tmp_path / "llama31"
    write_hf_checkpoint(model_dir, tied=False, sharded=False)
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
