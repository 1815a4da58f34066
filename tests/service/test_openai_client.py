"""The official `openai` client, unchanged, with base_url pointed at the service."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.support.service import MODEL, RunningService


def _sync(service: RunningService) -> openai.OpenAI:
    return openai.OpenAI(base_url=service.base_url + "/v1", api_key="unused", max_retries=0)


def test_sync_completion_whole_and_streamed(service: RunningService) -> None:
    client = _sync(service)
    whole = client.completions.create(model=MODEL, prompt="tokens", max_tokens=5, temperature=0)
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage is not None and whole.usage.completion_tokens == 5
    stream = client.completions.create(
        model=MODEL, prompt="tokens", max_tokens=5, temperature=0, stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert all(c.usage is None for c in chunks)  # none asked for


def test_streamed_usage_summed_over_chunks_equals_whole_usage(service: RunningService) -> None:
    """A client that adds up usage per chunk (as some SDK wrappers do) must count it once."""
    client = _sync(service)
    for kind in ("completions", "chat"):
        if kind == "completions":
            args: dict[str, Any] = {"prompt": "count me once"}
            create: Any = client.completions.create
        else:
            args = {"messages": [{"role": "user", "content": "count me once"}]}
            create = client.chat.completions.create
        whole = create(model=MODEL, max_tokens=6, temperature=0, **args)
        chunks = list(
            create(
                model=MODEL, max_tokens=6, temperature=0, stream=True,
                stream_options={"include_usage": True}, **args,
            )
        )  # fmt: skip
        with_usage = [c.usage for c in chunks if c.usage is not None]
        assert len(with_usage) == 1, kind
        summed = {
            f: sum(getattr(u, f) for u in with_usage)
            for f in ("prompt_tokens", "completion_tokens", "total_tokens")
        }
        assert whole.usage is not None
        assert summed == whole.usage.model_dump(include=set(summed)), kind


def test_sync_chat_whole_and_streamed_with_usage(service: RunningService) -> None:
    client = _sync(service)
    messages = [{"role": "user", "content": "hello there"}]
    whole = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=4, temperature=0, seed=1
    )
    assert whole.choices[0].message.role == "assistant"
    stream = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=4,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == whole.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4


async def test_async_chat_and_completion_streamed(service: RunningService) -> None:
    client = openai.AsyncOpenAI(base_url=service.base_url + "/v1", api_key="unused", max_retries=0)
    async with client:
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "async"}],
            max_tokens=3,
            stream=True,
            extra_body={"priority": "premium"},
        )
        reasons = [c.choices[0].finish_reason async for c in stream if c.choices]
        assert reasons[-1] == "length"
        whole = await client.completions.create(model=MODEL, prompt="async", max_tokens=3)
        assert whole.usage is not None and whole.usage.completion_tokens == 3


def test_client_sees_typed_errors(service: RunningService) -> None:
    client = _sync(service)
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="no-such-model", prompt="x", max_tokens=1)
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.completions.create(model=MODEL, prompt="x", max_tokens=1, n=2)
    assert "n=1" in str(excinfo.value)
