"""Bad input fails at submit with a clear error; the engine keeps serving.

An unknown priority never reaches the engine: the API parses it (tests/service).
"""

from __future__ import annotations

import pytest

from inference.backend import EngineError, InvalidRequestError, PromptTooLongError
from tests.support.engine import EngineFactory, make_request, prompt_of, run_all

CASES = [
    ("empty", [], {}, InvalidRequestError, "prompt is empty"),
    ("too_long", prompt_of(2049), {}, PromptTooLongError, "max_model_len\\) is 2048"),
    ("max_tokens0", prompt_of(5), {"max_tokens": 0}, InvalidRequestError, "max_tokens must be"),
    ("past_ctx", prompt_of(2000), {"max_tokens": 100}, PromptTooLongError, "2100 exceeds"),
    ("top_p", prompt_of(5), {"top_p": 0.0}, InvalidRequestError, "top_p must be in"),
    ("temp", prompt_of(5), {"temperature": -1.0}, InvalidRequestError, "temperature must be"),
    ("vocab", [1, 999], {}, InvalidRequestError, "token ids must be in \\[0, 258\\)"),
]


@pytest.mark.parametrize(("rid", "prompt", "kwargs", "error", "message"), CASES)
async def test_bad_request_is_rejected_and_engine_serves_on(
    make_engine: EngineFactory,
    rid: str,
    prompt: list[int],
    kwargs: dict,
    error: type[EngineError],
    message: str,
) -> None:
    engine = await make_engine()
    kwargs = {"max_tokens": 4, **kwargs}
    with pytest.raises(error, match=message):
        engine.generate(make_request(rid, prompt, **kwargs))
    (ok,) = await run_all(engine, [make_request("ok", prompt_of(8), 4)])
    assert len(ok.tokens) == 4 and ok.final.finish_reason == "length"
    assert engine.stats().kv.blocks_used == 0


async def test_request_larger_than_the_whole_cache(make_engine: EngineFactory) -> None:
    engine = await make_engine(num_kv_blocks=4)  # 64 tokens in all
    with pytest.raises(PromptTooLongError, match="needs 5 KV blocks .* cache has 4 blocks"):
        engine.generate(make_request("big", prompt_of(40), 30))


async def test_duplicate_request_id(make_engine: EngineFactory) -> None:
    engine = await make_engine(start=False)
    engine.generate(make_request("same", prompt_of(8), 4))
    with pytest.raises(InvalidRequestError, match="already in use"):
        engine.generate(make_request("same", prompt_of(8), 4))
