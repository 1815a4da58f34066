"""Admission works in front of vLLM: past its limit inferwatch refuses with an OpenAI error, a
503 and an honest Retry-After, instead of letting vLLM's queue grow (vLLM itself sends no
Retry-After). The limit is made small so a handful of requests overload it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.upstream.processes import SERVED_NAME, Server, front_of


@pytest.fixture(scope="module")
def small_front(
    vllm: Server, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    log_dir = tmp_path_factory.mktemp("small-front")
    with front_of(vllm, model_dir, log_dir, "--max-inflight-tokens", "600") as server:
        yield server


async def burst(server: Server, count: int) -> list[httpx.Response]:
    body = {"model": SERVED_NAME, "prompt": "overload", "max_tokens": 200, "ignore_eos": True}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=300) as client:
        calls = [client.post("/v1/completions", json=body) for _ in range(count)]
        return await asyncio.gather(*calls)


def test_refusals_under_overload_carry_retry_after(small_front: Server) -> None:
    responses = asyncio.run(burst(small_front, 12))
    refused = [r for r in responses if r.status_code != 200]
    assert refused, "12 requests of 200 tokens should overload a 600-token limit"
    assert any(r.status_code == 200 for r in responses)
    for r in refused:
        assert r.status_code in (429, 503)
        assert float(r.headers["retry-after"]) > 0
        assert r.json()["error"]["message"]
