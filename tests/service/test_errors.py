"""Bad input gets a 4xx with an OpenAI error object (never a 500); an engine failure fails only
the request it hit."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from inference.api.errors import retry_headers
from inference.backend import (
    Backend,
    BackendStats,
    GenerationRequest,
    RequestOutput,
    RequestStream,
    StepStats,
)
from tests.support.exposition import total
from tests.support.service import MODEL, RunningService, serve, small_engine
from tests.support.waiting import wait_until

BAD_REQUESTS = [
    # (path, body or raw text, headers, status, param)
    ("/v1/completions", "{not json", {}, 400, None),
    ("/v1/completions", {"max_tokens": 3}, {}, 400, "prompt"),
    ("/v1/completions", {"prompt": ""}, {}, 400, "prompt"),
    ("/v1/completions", {"prompt": ["a", "b"]}, {}, 400, "prompt"),
    ("/v1/completions", {"prompt": "x", "max_tokens": 0}, {}, 400, "max_tokens"),
    ("/v1/completions", {"prompt": "x", "max_tokens": "many"}, {}, 400, "max_tokens"),
    ("/v1/completions", {"prompt": "x", "temperature": -1}, {}, 400, "temperature"),
    ("/v1/completions", {"prompt": "x", "priority": "vip"}, {}, 400, "priority"),
    ("/v1/completions", {"prompt": "x"}, {"x-priority": "urgent"}, 400, "priority"),
    ("/v1/completions", {"prompt": "x", "model": "gpt-9"}, {}, 404, "model"),
    ("/v1/completions", {"prompt": "x", "n": 2}, {}, 400, "n"),
    ("/v1/completions", {"prompt": "x", "seed": 2**80}, {}, 400, "seed"),
    ("/v1/completions", {"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, {}, 400, "stop"),
    ("/v1/chat/completions", {"messages": []}, {}, 400, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}, {}, 400, None),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": ""}]}, {}, 400, None),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "n": 2}, {}, 400,
     "n"),
    # Parameters that would change the response's meaning: refused, never silently ignored.
    ("/v1/completions", {"prompt": "x", "logprobs": 5}, {}, 400, "logprobs"),
    ("/v1/completions", {"prompt": "x", "echo": True}, {}, 400, "echo"),
    ("/v1/completions", {"prompt": "x", "best_of": 3}, {}, 400, "best_of"),
    ("/v1/completions", {"prompt": "x", "presence_penalty": 0.5}, {}, 400, "presence_penalty"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "logprobs": True},
     {}, 400, "logprobs"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
     "tools": [{"type": "function", "function": {"name": "f"}}]}, {}, 400, "tools"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
     "response_format": {"type": "json_object"}}, {}, 400, "response_format"),
]  # fmt: skip

# Defaults some clients send explicitly: accepted.
ACCEPTED_DEFAULTS = [
    {"logprobs": None, "echo": False, "best_of": 1, "presence_penalty": 0, "logit_bias": {}},
    {"tool_choice": "none", "response_format": {"type": "text"}, "frequency_penalty": 0.0},
]


@pytest.mark.parametrize(("path", "body", "headers", "status", "param"), BAD_REQUESTS)
def test_bad_input_gets_4xx_error_object(
    service: RunningService,
    path: str,
    body: object,
    headers: dict[str, str],
    status: int,
    param: str | None,
) -> None:
    with service.client() as c:
        if isinstance(body, str):
            headers = {**headers, "content-type": "application/json"}
            r = c.post(path, content=body, headers=headers)
        else:
            r = c.post(path, json=body, headers=headers)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param


@pytest.mark.parametrize("extra", ACCEPTED_DEFAULTS)
def test_explicit_defaults_of_unsupported_parameters_are_accepted(
    service: RunningService, extra: dict[str, object]
) -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 2, **extra}
    with service.client() as c:
        r = c.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] == 2


def test_prompt_too_long_names_the_limit_and_counts_a_rejection(service: RunningService) -> None:
    limit = service.backend.max_model_len
    before = total(
        service.metrics_text(), "inferwatch_request_rejections_total", reason="prompt_too_long"
    )
    with service.client() as c:
        r = c.post("/v1/completions", json={"prompt": "y" * (limit + 10), "max_tokens": 1})
        stream = c.post(
            "/v1/completions", json={"prompt": "y" * (limit + 10), "max_tokens": 1, "stream": True}
        )
    assert r.status_code == 400 and stream.status_code == 400
    assert str(limit) in r.json()["error"]["message"]
    assert r.json()["error"]["code"] == "context_length_exceeded"
    after = total(
        service.metrics_text(), "inferwatch_request_rejections_total", reason="prompt_too_long"
    )
    assert after - before == 2


POISON_EARLY = "poison-early"  # the model "raises" before the first token
POISON_LATE = "poison-late"  # ... after the first token


class FailingBackend:
    """Test double wrapping the REAL engine: requests whose prompt contains a poison word fail
    the way the engine fails a request whose forward raised (a finished output with
    finish_reason "error"), or by the stream itself raising after the first token. Every other
    call goes to the real engine untouched. (A double because the real model cannot be made to
    raise for one chosen request from outside.)"""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.tokenizer = inner.tokenizer
        self.max_model_len = inner.max_model_len
        self.backend_name = inner.backend_name

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    def ready(self) -> bool:
        return self.inner.ready()

    def generate(self, request: GenerationRequest) -> RequestStream:
        stream = self.inner.generate(request)
        prompt = self.tokenizer.decode(request.prompt_token_ids)
        if POISON_EARLY in prompt:
            return _Failing(stream, fail_at=0)
        if POISON_LATE in prompt:
            return _Failing(stream, fail_at=1)
        return stream

    async def cancel(self, request_id: str) -> None:
        await self.inner.cancel(request_id)

    def stats(self) -> BackendStats:
        return self.inner.stats()

    async def refresh_stats(self) -> None:
        await self.inner.refresh_stats()

    def add_step_listener(self, listener: Callable[[StepStats], None]) -> None:
        self.inner.add_step_listener(listener)


class _Failing:
    def __init__(self, inner: RequestStream, fail_at: int) -> None:
        self.inner = inner
        self.fail_at = fail_at

    def __aiter__(self) -> AsyncIterator[RequestOutput]:
        return self._outputs()

    async def _outputs(self) -> AsyncIterator[RequestOutput]:
        index = 0
        async for output in self.inner:
            if index == self.fail_at == 0:
                await self.inner.aclose()  # the engine frees a failed request's blocks
                yield dataclasses.replace(
                    output, finished=True, finish_reason="error", error="model raised: boom"
                )
                return
            if index == self.fail_at:
                await self.inner.aclose()
                raise RuntimeError("model raised: boom")
            index += 1
            yield output

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def failing_service() -> Iterator[RunningService]:
    thread, app, backend, spans = serve(FailingBackend(small_engine()))
    with thread as base_url:
        yield RunningService(app, backend, spans, base_url)


async def test_engine_failure_fails_only_that_request(failing_service: RunningService) -> None:
    svc = failing_service

    async def post(prompt: str, stream: bool = False) -> tuple[int, str]:
        async with svc.async_client() as c:
            r = await c.post(
                "/v1/completions",
                json={"model": MODEL, "prompt": prompt, "max_tokens": 4, "stream": stream},
            )
            return r.status_code, r.text

    results = await asyncio.wait_for(
        asyncio.gather(
            post("fine one"),
            post(f"a {POISON_EARLY} prompt"),
            post("fine two", stream=True),
            post(f"a {POISON_EARLY} prompt", stream=True),
            post(f"a {POISON_LATE} prompt", stream=True),
            post("fine three"),
        ),
        timeout=60,
    )
    statuses = [status for status, _ in results]
    assert statuses == [200, 500, 200, 500, 200, 200]
    for _, text in (results[1], results[3]):
        error = json.loads(text)["error"]
        assert error["type"] == "server_error" and "generation failed" in error["message"]
        assert "boom" not in error["message"]  # engine internals stay in the log and the span
    # Headers were out already: the failure arrives in-band, then the stream still ends.
    late = results[4][1]
    assert '"error"' in late and "generation failed" in late and "boom" not in late
    assert late.rstrip().endswith("data: [DONE]")
    failed = [s for s in svc.spans.get_finished_spans() if s.status.description]
    assert any("boom" in (s.status.description or "") for s in failed)
    text = svc.metrics_text()
    assert total(text, "inferwatch_requests_total", outcome="failed") == 3
    assert total(text, "inferwatch_requests_total", outcome="completed") == 3
    assert wait_until(lambda: svc.backend.stats().kv.blocks_used == 0, timeout=10)
    # ... and the engine keeps serving.
    assert (await post("after the failures"))[0] == 200


@pytest.mark.parametrize("seconds", [0.0, 0.0004, 0.9996, 1.0, 1.0004, 1.5, 59.9999, 60.0])
def test_retry_after_and_retry_after_ms_always_agree(seconds: float) -> None:
    """The two headers say the same wait: whole seconds are the milliseconds rounded up (a
    refusal at 1.0004 s once said `Retry-After: 2` beside `retry-after-ms: 1000`)."""
    headers = retry_headers(seconds)
    ms = int(headers["retry-after-ms"])
    assert ms >= 1 and ms >= seconds * 1000
    assert int(headers["Retry-After"]) == max(1, -(-ms // 1000))
