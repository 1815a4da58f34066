"""Through `inferwatch serve --upstream`, the official openai client gets what vLLM itself
answers (greedy: the same text, finish reason and usage), streaming and not, and a stream comes
through as it is made: the first piece long before the last.

vLLM itself merges a stream's pieces when its reader lags (its output collector aggregates
deltas), so the exact split of a stream differs from one run to the next, directly or not; the
tests compare the joined text, and the timing shows that nothing waits for the whole answer."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.upstream.processes import SERVED_NAME, Server

MESSAGES = [{"role": "user", "content": "Name three colours of the rainbow."}]


def client(server: Server) -> OpenAI:
    return OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)


def chat(server: Server, **extra: Any) -> tuple[str, str | None, Any]:
    r = client(server).chat.completions.create(
        model=SERVED_NAME, messages=MESSAGES, max_tokens=24, temperature=0, **extra
    )
    return r.choices[0].message.content or "", r.choices[0].finish_reason, r.usage


def chat_stream(server: Server, max_tokens: int = 24) -> tuple[list[str], str | None, Any]:
    stream = client(server).chat.completions.create(
        model=SERVED_NAME, messages=MESSAGES, max_tokens=max_tokens, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish
    return pieces, finish, usage


def piece_times(server: Server) -> list[float]:
    """When each piece of a long streamed answer reached the client (seconds from the call)."""
    start = time.monotonic()
    stream = client(server).completions.create(
        model=SERVED_NAME, prompt="stream", max_tokens=400, temperature=0, stream=True,
        extra_body={"ignore_eos": True},
    )  # fmt: skip
    return [time.monotonic() - start for chunk in stream if chunk.choices and chunk.choices[0].text]


def completion(server: Server, stream: bool) -> tuple[str, Any]:
    kwargs: dict[str, Any] = {"stream_options": {"include_usage": True}} if stream else {}
    r = client(server).completions.create(
        model=SERVED_NAME, prompt="The quick brown fox", max_tokens=20, temperature=0,
        stream=stream, **kwargs,
    )  # fmt: skip
    if not stream:
        return r.choices[0].text, r.usage
    text, usage = "", None
    for chunk in r:
        usage = chunk.usage or usage
        text += "".join(c.text for c in chunk.choices)
    return text, usage


def test_chat_answers_are_vllms(vllm: Server, front: Server) -> None:
    direct, through = chat(vllm), chat(front)
    assert through == direct
    assert direct[2].completion_tokens > 0


def test_a_chat_stream_is_vllms_answer(vllm: Server, front: Server) -> None:
    direct, through = chat_stream(vllm), chat_stream(front)
    assert "".join(through[0]) == "".join(direct[0])
    assert len(through[0]) > 1
    assert through[1:] == direct[1:]  # finish reason, usage
    assert "".join(through[0]) == chat(front)[0]


def test_a_stream_arrives_as_it_is_made(front: Server) -> None:
    times = piece_times(front)
    assert len(times) > 10
    assert times[0] < 0.5 * times[-1]  # the first piece came long before the answer was done


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_completions_are_vllms(vllm: Server, front: Server, stream: bool) -> None:
    direct, through = completion(vllm, stream), completion(front, stream)
    assert through == direct
    assert direct[1].prompt_tokens > 1 and direct[1].completion_tokens > 0


def test_the_front_names_the_upstreams_model(front: Server) -> None:
    models = httpx.get(front.base_url + "/v1/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [SERVED_NAME]


def test_bad_input_is_an_openai_error_in_front(front: Server) -> None:
    too_long = {"model": SERVED_NAME, "prompt": "x" * 3000, "max_tokens": 8}
    response = httpx.post(front.base_url + "/v1/completions", json=too_long, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"
    wrong_model = {"model": "nope", "prompt": "hi"}
    response = httpx.post(front.base_url + "/v1/completions", json=wrong_model, timeout=30)
    assert response.status_code == 404
    assert "error" in response.json()
