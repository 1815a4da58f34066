"""Completions and chat over real HTTP (httpx), whole and streamed as server-sent events."""

from __future__ import annotations

import json

import httpx

from inference.api.app import create_app
from inference.settings import Settings
from tests.support.exposition import total
from tests.support.service import MODEL, RunningService, small_engine


def sse_payloads(response: httpx.Response) -> list[str]:
    lines = [line for line in response.text.split("\n") if line]
    assert all(line.startswith("data: ") for line in lines), lines
    return [line.removeprefix("data: ") for line in lines]


def test_completion_whole(service: RunningService) -> None:
    with service.client() as c:
        r = c.post(
            "/v1/completions",
            json={"model": MODEL, "prompt": "The cache", "max_tokens": 5, "temperature": 0},
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["model"] == MODEL
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length"
    assert isinstance(choice["text"], str) and choice["text"]
    assert body["usage"] == {"prompt_tokens": body["usage"]["prompt_tokens"],
                             "completion_tokens": 5,
                             "total_tokens": body["usage"]["prompt_tokens"] + 5}  # fmt: skip
    assert body["usage"]["prompt_tokens"] > 0
    assert float(r.headers["x-inferwatch-queue-ms"]) >= 0
    assert float(r.headers["x-inferwatch-ttft-ms"]) >= float(r.headers["x-inferwatch-queue-ms"])
    assert len(r.headers["x-request-id"]) == 32


def test_greedy_is_deterministic_and_prompt_list_of_one_is_accepted(
    service: RunningService,
) -> None:
    with service.client() as c:
        texts = [
            c.post(
                "/v1/completions",
                json={"prompt": prompt, "max_tokens": 6, "temperature": 0},
            ).json()["choices"][0]["text"]
            for prompt in ("same prompt", ["same prompt"])
        ]
    assert texts[0] == texts[1]


def test_completion_streamed_matches_whole(service: RunningService) -> None:
    request = {"prompt": "stream me", "max_tokens": 6, "temperature": 0}
    with service.client() as c:
        whole = c.post("/v1/completions", json=request).json()
        r = c.post("/v1/completions", json={**request, "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert float(r.headers["x-inferwatch-ttft-ms"]) > 0
    payloads = sse_payloads(r)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    text = "".join(c["choices"][0]["text"] for c in chunks)
    assert text == whole["choices"][0]["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all("usage" not in c for c in chunks)  # OpenAI: no usage without include_usage
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])


def test_chat_whole_and_streamed(service: RunningService) -> None:
    request = {
        "model": MODEL,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "max_completion_tokens": 4,
        "temperature": 0,
    }
    with service.client() as c:
        whole = c.post("/v1/chat/completions", json=request)
        streamed = c.post(
            "/v1/chat/completions",
            json={**request, "stream": True, "stream_options": {"include_usage": True}},
        )
    assert whole.status_code == 200, whole.text
    body = whole.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["completion_tokens"] == 4
    payloads = sse_payloads(streamed)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    # include_usage: OpenAI's extra last chunk with no choices and the usage, sent once;
    # every other chunk says "usage": null.
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == body["usage"]
    assert all(c["usage"] is None for c in chunks[:-1])
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert content == body["choices"][0]["message"]["content"]


def test_stop_string_ends_with_stop(service: RunningService) -> None:
    with service.client() as c:
        free = c.post(
            "/v1/completions", json={"prompt": "abc", "max_tokens": 12, "temperature": 0}
        ).json()["choices"][0]["text"]
        stop = free[3:5] or free[-1]
        cut = c.post(
            "/v1/completions",
            json={"prompt": "abc", "max_tokens": 12, "temperature": 0, "stop": [stop]},
        ).json()["choices"][0]
    assert cut["finish_reason"] == "stop"
    assert cut["text"] == free[: free.index(stop)]


def test_request_id_honoured_when_sane_else_replaced(service: RunningService) -> None:
    with service.client() as c:
        mine = c.post(
            "/v1/completions",
            json={"prompt": "x", "max_tokens": 1},
            headers={"x-request-id": "client-abc.123"},
        )
        insane = c.post(
            "/v1/completions",
            json={"prompt": "x", "max_tokens": 1},
            headers={"x-request-id": "bad id with spaces"},
        )
        error = c.post("/v1/completions", json={"prompt": "x", "n": 3})
    assert mine.headers["x-request-id"] == "client-abc.123"
    assert insane.headers["x-request-id"] != "bad id with spaces"
    assert len(insane.headers["x-request-id"]) == 32
    assert error.status_code == 400 and len(error.headers["x-request-id"]) == 32


def test_priority_from_header_and_body(service: RunningService) -> None:
    with service.client() as c:
        by_header = c.post(
            "/v1/completions",
            json={"prompt": "x", "max_tokens": 1},
            headers={"x-priority": "batch"},
        )
        by_body = c.post(
            "/v1/completions", json={"prompt": "x", "max_tokens": 1, "priority": "premium"}
        )
    assert by_header.status_code == 200 and by_body.status_code == 200
    text = service.metrics_text()
    for priority in ("batch", "premium"):
        assert total(text, "inferwatch_requests_total", priority=priority) >= 1


def test_models_health_ready(service: RunningService) -> None:
    with service.client() as c:
        models = c.get("/v1/models").json()
        health = c.get("/health")
        ready = c.get("/ready")
    assert [m["id"] for m in models["data"]] == [MODEL]
    assert health.status_code == 200
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_ready_follows_the_engine_lifecycle() -> None:
    """Through ASGI without a server, so the lifespan (engine start/stop) is driven by hand."""
    app = create_app(Settings(), backend=small_engine(), metric_sources=[])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://asgi") as c:
        assert (await c.get("/ready")).status_code == 503  # not started yet
        assert (await c.get("/health")).status_code == 200
        async with app.router.lifespan_context(app):
            assert (await c.get("/ready")).status_code == 200
            ok = await c.post("/v1/completions", json={"prompt": "x", "max_tokens": 1})
            assert ok.status_code == 200
        assert (await c.get("/ready")).status_code == 503  # stopped
        late = await c.post("/v1/completions", json={"prompt": "x", "max_tokens": 1})
    assert late.status_code == 503 and late.headers["retry-after"] == "1"
    assert late.json()["error"]["code"] == "engine_unavailable"


def test_seeded_sampling_repeats(service: RunningService) -> None:
    with service.client() as c:
        texts = [
            c.post(
                "/v1/completions",
                json={"prompt": "dice", "max_tokens": 8, "temperature": 1.0, "seed": seed},
            ).json()["choices"][0]["text"]
            for seed in (-5, -5, 2**53)
        ]
    assert texts[0] == texts[1]
    assert all(texts)
