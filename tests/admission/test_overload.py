"""Under overload, over real HTTP with the real engine: refusals are fast, carry Retry-After,
retry-after-ms and their reason, and are counted by it; premium keeps succeeding, at the top
level too; the official `openai` client with its default retries gets through 2x overload; a
request past its class deadline is cancelled (blocks freed) and told so, whole or streamed."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import httpx
import openai

from tests.admission.conftest import ADMIN, running
from tests.support.exposition import total
from tests.support.waiting import wait_until

# KV tokens: with ~12-token prompts and 32 new tokens, about 5 requests of one class fit.
SMALL_LIMIT = 300
STEADY = {"concurrency_tolerance": 20.0}  # these tests are about refusals, not the gradient


async def _burst(base_url: str, priorities: list[str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(priorities))
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as c:
        calls = [
            c.post(
                "/v1/completions",
                json={
                    "prompt": f"burst {i}",
                    "max_tokens": 32,
                    "ignore_eos": True,
                    "priority": p,
                    "stream": i % 2 == 0,
                },
            )  # fmt: skip
            for i, p in enumerate(priorities)
        ]
        return await asyncio.gather(*calls)


def test_refusals_carry_retry_after_and_a_reason_and_premium_keeps_succeeding() -> None:
    with running(max_inflight_tokens=SMALL_LIMIT, **STEADY) as svc:
        before = svc.metrics_text()
        priorities = ["premium"] * 4 + ["standard", "batch"] * 12
        answers = asyncio.run(_burst(svc.base_url, priorities))
        after = svc.metrics_text()
    statuses = [(p, r.status_code) for p, r in zip(priorities, answers, strict=True)]
    assert all(s == 200 for p, s in statuses if p == "premium"), statuses
    refused = [r for r in answers if r.status_code == 503]
    assert refused, statuses
    for r in refused:
        assert 1 <= int(r.headers["retry-after"]) <= 120
        ms = int(r.headers["retry-after-ms"])
        assert 0 < ms <= 120_000 and int(r.headers["retry-after"]) == -(-ms // 1000)
        assert r.json()["error"]["code"] in ("concurrency_limit", "queue_full")
    counted = sum(
        total(after, "inferwatch_request_rejections_total", reason=reason)
        - total(before, "inferwatch_request_rejections_total", reason=reason)
        for reason in ("concurrency_limit", "queue_full")
    )
    assert counted == len(refused)


def test_at_the_top_level_premium_keeps_succeeding_and_the_rest_is_shed(
    token_file: Path,
) -> None:
    with running(admin_token_file=str(token_file), **STEADY) as svc:
        with svc.client() as c:
            c.post("/admin/degradation", json={"level": 3, "reason": "test"}, headers=ADMIN)
        priorities = ["premium", "standard", "batch"] * 8
        answers = asyncio.run(_burst(svc.base_url, priorities))
    for priority, r in zip(priorities, answers, strict=True):
        if priority == "premium":
            assert r.status_code == 200
        else:
            assert r.status_code == 503 and r.json()["error"]["code"] == "shed"
            assert "retry-after" in r.headers and "retry-after-ms" in r.headers


def test_openai_clients_with_default_retries_get_through_2x_overload() -> None:
    """Twice as many at once as fit: the refused ones wait what the server says and succeed
    on a retry (`max_retries` left at the client's default of 2)."""
    with running(max_inflight_tokens=SMALL_LIMIT, **STEADY) as svc:
        client = openai.OpenAI(base_url=svc.base_url + "/v1", api_key="unused")
        assert client.max_retries == 2
        model = svc.backend.model_name
        results: list[object] = []
        lock = threading.Lock()

        def call(i: int) -> None:
            try:
                out = client.completions.create(
                    model=model, prompt=f"overload {i}", max_tokens=32, temperature=0,
                    extra_body={"ignore_eos": True},
                )  # fmt: skip
                result: object = out.usage.completion_tokens if out.usage else None
            except openai.OpenAIError as exc:
                result = exc
            with lock:
                results.append(result)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        text = svc.metrics_text()
    assert results == [32] * 10, results
    refusals = total(text, "inferwatch_request_rejections_total", reason="concurrency_limit")
    assert refusals > 0  # it really was overloaded: some got through only on a retry


def _ladder(tmp_path: Path) -> str:
    path = tmp_path / "ladder.json"
    path.write_text(json.dumps({"service": {"standard": {"share": 0.75, "timeout_s": 0.5}}}))
    return str(path)


def test_past_its_deadline_a_request_is_cancelled_and_told(tmp_path: Path) -> None:
    long = {"prompt": "keep talking", "max_tokens": 1500, "ignore_eos": True}
    with running(degradation_levels_file=_ladder(tmp_path)) as svc, svc.client() as c:
        whole = c.post("/v1/completions", json=long)
        assert whole.status_code == 503
        error = whole.json()["error"]
        assert error["code"] == "deadline_exceeded" and "0.5 s deadline" in error["message"]
        assert 1 <= int(whole.headers["retry-after"]) <= 120
        with c.stream("POST", "/v1/completions", json={**long, "stream": True}) as streamed:
            assert streamed.status_code == 200  # the first token came in time
            events = [line for line in streamed.iter_lines() if line.startswith("data: ")]
        assert events[-1] == "data: [DONE]"
        cut = json.loads(events[-2].removeprefix("data: "))
        assert cut["error"]["code"] == "deadline_exceeded"
        premium = c.post("/v1/completions", json={**long, "max_tokens": 20, "priority": "premium"})
        assert premium.status_code == 200  # premium's deadline is its own (60 s)
        assert wait_until(lambda: svc.backend.stats().kv.blocks_used == 0, timeout=10)
        text = svc.metrics_text()
    assert total(text, "inferwatch_request_rejections_total", reason="deadline_exceeded") == 2
    assert total(text, "inferwatch_requests_total", outcome="rejected") == 2
    assert total(text, "inferwatch_requests_total", outcome="failed") == 0
