"""Seeded sampling, top-p, stop strings and EOS, through the real engine."""

from __future__ import annotations

from inference.engine.tokenizer import EOS_ID
from tests.support.engine import EngineFactory, make_request, prompt_of, run_all

SAMPLED = {"temperature": 1.5, "top_p": 0.95}


async def test_same_seed_same_output_regardless_of_companions(make_engine: EngineFactory) -> None:
    engine = await make_engine(dtype="float64")
    prompt = prompt_of(21, seed=4)
    (alone,) = await run_all(engine, [make_request("alone", prompt, 32, seed=123, **SAMPLED)])
    others = [make_request(f"o{i}", prompt_of(10 + 9 * i, i), 32, **SAMPLED) for i in range(7)]
    together = await run_all(
        engine, [*others, make_request("same", prompt, 32, seed=123, **SAMPLED)]
    )
    (other_seed,) = await run_all(engine, [make_request("x", prompt, 32, seed=124, **SAMPLED)])

    assert together[-1].tokens == alone.tokens
    assert other_seed.tokens != alone.tokens
    (greedy,) = await run_all(engine, [make_request("g", prompt, 32)])
    assert alone.tokens != greedy.tokens  # sampling really sampled


async def test_tiny_top_p_is_greedy(make_engine: EngineFactory) -> None:
    engine = await make_engine()
    prompt = prompt_of(30, seed=9)
    (greedy,) = await run_all(engine, [make_request("g", prompt, 24)])
    (nucleus,) = await run_all(
        engine, [make_request("p", prompt, 24, temperature=1.0, top_p=1e-6, seed=1)]
    )
    assert nucleus.tokens == greedy.tokens


async def test_stop_string_ends_text_before_it(make_engine: EngineFactory) -> None:
    engine = await make_engine()
    prompt = prompt_of(12, seed=2)
    (full,) = await run_all(engine, [make_request("full", prompt, 48)])
    text = full.text
    start = next(i for i in range(6, len(text) - 2) if "\ufffd" not in text[i : i + 2])
    stop = text[start : start + 2]
    (stopped,) = await run_all(engine, [make_request("stop", prompt, 48, stop=(stop, "\x00zz"))])

    assert stopped.final.finish_reason == "stop"
    assert stopped.text == text[: text.index(stop)]
    assert stop not in stopped.text
    assert len(stopped.tokens) < len(full.tokens)
    assert full.final.finish_reason == "length" and full.final.completion_tokens == 48


async def test_eos_finishes_with_stop_unless_ignored(make_engine: EngineFactory) -> None:
    """Scans a few prompts for one whose greedy continuation reaches EOS (the random model
    emits it now and then); `ignore_eos` then runs on past it with the same tokens."""
    engine = await make_engine()
    for seed in range(40):
        prompt = prompt_of(8, seed=seed)
        (r,) = await run_all(engine, [make_request(f"e{seed}", prompt, 64, ignore_eos=False)])
        if r.final.finish_reason == "stop":
            assert r.tokens[-1] == EOS_ID
            (ignored,) = await run_all(engine, [make_request(f"i{seed}", prompt, 64)])
            assert len(ignored.tokens) == 64 and ignored.final.finish_reason == "length"
            assert ignored.tokens[: len(r.tokens)] == r.tokens
            return
        assert len(r.tokens) == 64
    raise AssertionError("no prompt reached EOS within 64 tokens; the model never emits EOS")
