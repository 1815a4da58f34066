"""Loading a GGUF file as llama.cpp's converter writes one (names, Q/K rows permuted, quantized
matrices, tied or separate output): greedy output equals the reference forward of the weights
the file holds, and what the loader cannot represent is refused naming the file. Small files
written here; about 5 s in all."""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf import GGMLQuantizationType

from inference.engine import EngineConfig, build_engine
from tests.support.checkpoints import (
    CHAT_TEMPLATE,
    CONFIG,
    random_weights,
    train_tokenizer,
    write_gguf,
)
from tests.support.engine import EngineFactory, make_request, run_all
from tests.support.reference import greedy_choices


def _write(path: Path, tied: bool, qtype: GGMLQuantizationType, **kwargs: object) -> tuple:
    tok = train_tokenizer()
    cfg = dict(CONFIG, vocab_size=tok.get_vocab_size())
    weights = random_weights(cfg, tied)
    expected = write_gguf(path, weights, cfg, tok, qtype, **kwargs)  # type: ignore[arg-type]
    return expected, cfg, tok


@pytest.mark.parametrize(
    ("tied", "qtype"),
    [(True, GGMLQuantizationType.Q8_0), (False, GGMLQuantizationType.Q4_1)],
    ids=["tied-Q8_0", "untied-Q4_1"],
)
async def test_gguf_output_equals_reference(
    make_engine: EngineFactory, tmp_path: Path, tied: bool, qtype: GGMLQuantizationType
) -> None:
    path = tmp_path / "small-llama.Q.gguf"
    expected, cfg, tok = _write(path, tied, qtype)
    engine = await make_engine(model_path=str(path), dtype="float64")

    assert engine.model_name == "small-llama.Q"
    assert engine.max_model_len == 512
    model = engine._runner.model
    assert model.config.rope_theta == 500000.0 and model.config.tie_word_embeddings == tied
    text = "the lazy fox rises"
    assert engine.tokenizer.encode(text) == tok.encode(text).ids  # BOS added, as the file says
    assert engine.tokenizer.decode(tok.encode(text).ids) == text
    chat = engine.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}])
    assert chat == "[user] hi\n[assistant] "

    prompt = tok.encode(text).ids
    results = await run_all(engine, [make_request(f"r{i}", prompt[: 3 + i], 10) for i in range(3)])
    ref = {k: v.double() for k, v in expected.items()}
    for i, result in enumerate(results):
        assert len(result.tokens) == 10
        assert result.tokens == greedy_choices(ref, cfg, prompt[: 3 + i], result.tokens)
    assert len({tuple(r.tokens) for r in results}) > 1


def _refused(path: Path, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        build_engine(EngineConfig(model_path=str(path)))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_gguf_without_its_permutation_would_differ(tmp_path: Path) -> None:
    """The Q/K rows really are permuted in the file: read as is, they differ from HF's."""
    from inference.engine.gguf_checkpoint import GGUFFile

    path = tmp_path / "m.gguf"
    expected, _, _ = _write(path, True, GGMLQuantizationType.F32)
    raw = GGUFFile(path).tensors["blk.0.attn_q.weight"].data
    assert not (raw == expected["model.layers.0.self_attn.q_proj.weight"].numpy()).all()


def test_unsupported_gguf_files_are_refused(tmp_path: Path) -> None:
    tok = train_tokenizer()
    cfg = dict(CONFIG, vocab_size=tok.get_vocab_size())
    weights = random_weights(cfg, tied=True)
    f32 = GGMLQuantizationType.F32

    write_gguf(tmp_path / "gpt2.gguf", weights, cfg, tok, f32, arch="gpt2")
    _refused(tmp_path / "gpt2.gguf", "architecture 'gpt2' is not supported")
    extra = {"llama.rope.scaling.type": "yarn"}
    write_gguf(tmp_path / "yarn.gguf", weights, cfg, tok, f32, extra=extra)
    _refused(tmp_path / "yarn.gguf", "rope scaling yarn is not supported")
    extra = {"tokenizer.ggml.pre": "qwen2"}
    write_gguf(tmp_path / "qwen.gguf", weights, cfg, tok, f32, extra=extra)
    _refused(tmp_path / "qwen.gguf", "pre-tokenizer 'qwen2' is not supported")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    _refused(tmp_path / "junk.gguf", "not a readable GGUF file")
    with pytest.raises(FileNotFoundError, match="no such .gguf file"):
        build_engine(EngineConfig(model_path=str(tmp_path / "absent.gguf")))


def test_chat_template_flag_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    _write(path, True, GGMLQuantizationType.F32)
    assert CHAT_TEMPLATE.startswith("{% for m in messages %}[")
    own = tmp_path / "own.jinja"
    own.write_text("{% for m in messages %}<{{ m.content }}>{% endfor %}")
    engine = build_engine(EngineConfig(model_path=str(path), chat_template=str(own)))
    assert engine.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}]) == "<hi>"
