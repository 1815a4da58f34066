"""One request, as a user sees it: streamed, timed at the client (time to first token, gaps
between chunks), retried after a refusal the way the official `openai` client retries
(the openai 3.x rule: `retry-after-ms`, then `Retry-After` in seconds or as an HTTP date, used
when within (0, 120] s; over 120 s no retry at all; else 0.5 s x 2^n capped at 8 s, minus up to
25% jitter; `x-should-retry` overrides everything)."""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from dataclasses import dataclass, field

import httpx

RETRYABLE = {408, 409, 429, 500, 502, 503, 504}
MAX_HONOURED_RETRY_AFTER = 120.0


@dataclass
class Result:
    priority: str
    status: int = 0  # last HTTP status; 0 = no answer at all
    ok: bool = False
    error: str | None = None  # a visible error (error object, SSE error event)
    lost: bool = False  # neither completed nor told why: the one outcome never acceptable
    start: float = 0.0
    ttft: float | None = None
    chunk_times: list[float] = field(default_factory=list)
    end: float = 0.0
    output_tokens: int = 0
    retries: int = 0
    refusals: list[int] = field(default_factory=list)  # statuses of refused attempts

    @property
    def tpot(self) -> float | None:
        """Time per output token after the first (vLLM's definition)."""
        if self.ttft is None or self.output_tokens < 2:
            return None
        return (self.end - self.start - self.ttft) / (self.output_tokens - 1)

    @property
    def itls(self) -> list[float]:
        return [b - a for a, b in zip(self.chunk_times, self.chunk_times[1:], strict=False)]


@dataclass(frozen=True)
class Target:
    base_url: str  # ends with /v1
    model: str
    api_key: str | None = None
    timeout: float = 120.0
    max_retries: int = 0
    chat: bool = False


def retry_delay(response: httpx.Response | None, attempt: int, rng: random.Random) -> float | None:
    """Seconds to wait before the next attempt, or None when the client would not retry."""
    if response is not None:
        for header, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
            raw = response.headers.get(header)
            if raw is None:
                continue
            seconds = _seconds(raw, scale)
            if seconds is None:
                continue
            if seconds > MAX_HONOURED_RETRY_AFTER:
                return None
            if seconds > 0:
                return seconds
    base = min(0.5 * 2**attempt, 8.0)
    return base * (1 - 0.25 * rng.random())


def _seconds(raw: str, scale: float) -> float | None:
    try:
        return float(raw) * scale
    except ValueError:
        pass
    if scale != 1.0:
        return None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


async def send(
    client: httpx.AsyncClient, target: Target, priority: str, prompt: str, max_tokens: int,
    rng: random.Random,
) -> Result:  # fmt: skip
    result = Result(priority=priority, start=time.monotonic())
    headers = {"x-priority": priority}
    if target.api_key:
        headers["authorization"] = f"Bearer {target.api_key}"
    body: dict[str, object] = {
        "model": target.model, "max_tokens": max_tokens, "temperature": 0, "stream": True,
        "stream_options": {"include_usage": True}, "ignore_eos": True,
    }  # fmt: skip
    if target.chat:
        body["messages"] = [{"role": "user", "content": prompt}]
        path = "/chat/completions"
    else:
        body["prompt"] = prompt
        path = "/completions"
    attempt = 0
    while True:
        response = await _attempt(client, target, path, body, headers, result)
        if result.ok or response is None:
            break
        should = response.headers.get("x-should-retry")
        if response.status_code not in RETRYABLE and should != "true":
            break
        if should == "false" or attempt >= target.max_retries:
            break
        delay = retry_delay(response, attempt, rng)
        if delay is None and should != "true":
            break
        await asyncio.sleep(delay if delay is not None else 0.5)
        attempt += 1
        result.retries += 1
    result.end = time.monotonic()
    return result


async def _attempt(
    client: httpx.AsyncClient, target: Target, path: str, body: dict[str, object],
    headers: dict[str, str], result: Result,
) -> httpx.Response | None:  # fmt: skip
    """One HTTP attempt; fills `result`. Returns the response (headers read) or None."""
    result.ttft, result.chunk_times, result.error, result.lost = None, [], None, False
    try:
        async with client.stream(
            "POST", target.base_url + path, json=body, headers=headers, timeout=target.timeout
        ) as response:
            result.status = response.status_code
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")
                result.refusals.append(response.status_code)
                result.error = _error_message(text) or f"HTTP {response.status_code}"
                return response
            done = await _read_events(response, result)
            if not done and result.error is None:
                result.lost = True
                result.error = "stream ended without [DONE]"
            result.ok = done and result.error is None
            return response
    except httpx.HTTPError as exc:
        result.lost = result.status == 200 or result.status == 0
        result.error = f"{type(exc).__name__}: {exc}"
        return None


async def _read_events(response: httpx.Response, result: Result) -> bool:
    async for line in response.aiter_lines():
        if not line.startswith("data: "):
            continue
        data = line.removeprefix("data: ")
        if data == "[DONE]":
            return True
        event = json.loads(data)
        if "error" in event:
            result.error = _error_message(data)
            continue
        if event.get("usage"):
            result.output_tokens = int(event["usage"]["completion_tokens"])
        for choice in event.get("choices") or []:
            text = choice.get("text") or (choice.get("delta") or {}).get("content")
            if text:
                now = time.monotonic()
                if result.ttft is None:
                    result.ttft = now - result.start
                result.chunk_times.append(now)
    return False


def _error_message(text: str) -> str | None:
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        return None
    if isinstance(error, dict):
        return str(error.get("message"))
    return None if error is None else str(error)
