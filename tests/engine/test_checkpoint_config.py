"""config.json as transformers 4 and 5 write it: both rotary layouts read alike, and what the
engine cannot represent is refused with one line naming the file, `inferwatch serve` exiting 2.
Small checkpoints; about 10 s in all (one real `inferwatch serve` start)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

from inference.engine import EngineConfig, build_engine
from inferwatch.commands import engine as engine_command
from inferwatch.commands import serve
from tests.support.checkpoints import write_hf_checkpoint
from tests.support.engine import EngineFactory, make_request, run_all

LLAMA3 = {
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}


def _edit_config(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    raw = json.loads((folder / "config.json").read_text())
    change(raw)
    (folder / "config.json").write_text(json.dumps(raw))


def _old_layout(raw: dict[str, Any]) -> None:
    raw["rope_theta"] = 500000.0
    raw["rope_scaling"] = {"rope_type": "llama3", **LLAMA3}


def _new_layout(raw: dict[str, Any]) -> None:
    """transformers 5's save_pretrained: no top-level rope_theta / rope_scaling."""
    del raw["rope_theta"]
    raw["rope_parameters"] = {"rope_type": "llama3", "rope_theta": 500000.0, **LLAMA3}


async def test_both_rope_layouts_give_the_same_tokens(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    results, configs = [], []
    for name, layout in (("old", _old_layout), ("new", _new_layout)):
        folder = tmp_path / name
        write_hf_checkpoint(folder)
        _edit_config(folder, layout)
        engine = await make_engine(model_path=str(folder), dtype="float64")
        configs.append(engine._runner.model.config)
        prompt = engine.tokenizer.encode("the quick brown fox jumps over the lazy dog " * 3)
        (result,) = await run_all(engine, [make_request(name, prompt, 12)])
        results.append(result.tokens)
    assert configs[0] == configs[1]
    assert configs[1].rope_theta == 500000.0 and configs[1].rope_llama3 == (8.0, 1.0, 4.0, 64)
    assert results[0] == results[1]


def _gpt2(folder: Path) -> None:
    (folder / "config.json").write_text(
        json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 64})
    )


def _yarn(folder: Path) -> None:
    def change(raw: dict[str, Any]) -> None:
        raw["rope_parameters"] = {"rope_type": "yarn", "rope_theta": 500000.0, "factor": 4.0}

    _edit_config(folder, change)


def _no_tokenizer(folder: Path) -> None:
    (folder / "tokenizer.json").unlink()


def _broken_tokenizer(folder: Path) -> None:
    (folder / "tokenizer.json").write_text('{"model": {"type": "BPE", "vocab": 3}}')


def _broken_config(folder: Path) -> None:
    (folder / "config.json").write_text("{not json")


def _mistral(folder: Path) -> None:
    _edit_config(folder, lambda raw: raw.update(model_type="mistral"))


REFUSALS = [
    (_gpt2, "config.json", "model_type 'gpt2', architectures ['GPT2LMHeadModel'] is not a Llama"),
    (_yarn, "config.json", "rope type 'yarn' is not supported"),
    (_mistral, "config.json", "model_type 'mistral'"),
    (_no_tokenizer, "tokenizer.json", "missing"),
    (_broken_tokenizer, "tokenizer.json", "unreadable tokenizer"),
    (_broken_config, "config.json", "unreadable JSON"),
]


def _serve_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("breaks", "file", "message"), REFUSALS, ids=[r[0].__name__ for r in REFUSALS]
)
def test_refused_checkpoint_exits_2_with_one_clear_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    breaks: Callable[[Path], None],
    file: str,
    message: str,
) -> None:
    folder = tmp_path / "ckpt"
    write_hf_checkpoint(folder)
    breaks(folder)
    monkeypatch.setattr("inference.telemetry.logs.configure_logging", lambda level: None)
    assert serve.run(_serve_args("--model-path", str(folder))) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"inferwatch serve: {folder / file}") and message in err, err
    assert "\n" not in err and "Traceback" not in err


def test_engine_command_exits_2_with_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "gpt2"
    write_hf_checkpoint(folder)
    _gpt2(folder)
    parser = argparse.ArgumentParser()
    engine_command.add_arguments(parser)
    assert engine_command.run(parser.parse_args(["--model-path", str(folder)])) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"inferwatch engine: {folder / 'config.json'}"), err
    assert "\n" not in err and "Traceback" not in err


def test_serve_process_exits_2_on_a_refused_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "gpt2"
    write_hf_checkpoint(folder)
    _gpt2(folder)
    cmd = [str(Path(sys.executable).parent / "inferwatch"), "serve", "--model-path", str(folder)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"inferwatch serve: {folder}")
    assert "Traceback" not in proc.stderr


def test_disagreeing_rope_settings_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "both"
    write_hf_checkpoint(folder)
    _edit_config(folder, lambda raw: raw.update(rope_parameters={"rope_theta": 10000.0}))
    with pytest.raises(ValueError, match="disagree"):
        build_engine(EngineConfig(model_path=str(folder)))


def test_model_and_model_path_together_are_refused(tmp_path: Path) -> None:
    config = EngineConfig(model="tiny", model_path=str(tmp_path))
    with pytest.raises(ValueError, match="not both"):
        build_engine(config)
    quantized = dataclasses.replace(
        EngineConfig(model="tiny"), quantization="int8", dtype="bfloat16"
    )
    with pytest.raises(
        ValueError, match="int8 quantization runs on --device cpu with --dtype float32"
    ):
        build_engine(quantized)


async def test_int8_quantizes_all_linear_layers_but_down_proj_and_the_lm_head() -> None:
    engine = build_engine(EngineConfig(model="tiny", quantization="int8", num_kv_blocks=16))
    # The engine's own model, after loading: layer kinds by their last name.
    layers = [(n.rsplit(".", 1)[-1], m) for n, m in engine._runner.model.named_modules()]
    float32 = sorted({n for n, m in layers if type(m) is torch.nn.Linear})
    int8 = {n for n, m in layers if isinstance(m, DynamicQuantizedLinear)}
    assert float32 == ["down_proj", "lm_head"]
    assert int8 == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"}
    await engine.start()
    try:
        [result] = await run_all(engine, [make_request("q", list(range(1, 9)), max_tokens=4)])
    finally:
        await engine.stop()
    assert len(result.tokens) == 4
