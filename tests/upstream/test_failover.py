"""Two upstreams; one dies under load and no request is lost: every request whose upstream died
before its first token is retried on the other, and the client sees only a 200.

The second upstream is a real `inferwatch serve` on the built-in tiny model acting as an
OpenAI upstream (a second vLLM would double the session's minutes of start-up on this machine;
it takes only text prompts, hence --upstream-prompt text). It is frozen (SIGSTOP) as the load
starts, so the requests routed to it wait for their first byte, then killed (SIGKILL) while they
wait. A request already streaming from a dying upstream cannot be replayed (its tokens were
delivered); it ends with an error the client sees (tested in the stream code's contract), which
is why the kill lands while its requests wait.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import pytest

from tests.support.exposition import families
from tests.support.waiting import wait_until
from tests.upstream.processes import SERVED_NAME, Server, start_inferwatch

REQUESTS = 24


@pytest.fixture
def pair(vllm: Server, model_dir: Path, tmp_path: Path) -> tuple[Server, Server]:
    tiny = start_inferwatch(
        "--model", "tiny", "--model-name", SERVED_NAME, log=tmp_path / "tiny.log",
        env={"INFERWATCH_NUM_KV_BLOCKS": "256"},
    )  # fmt: skip
    front = start_inferwatch(
        "--upstream", vllm.base_url, "--upstream", tiny.base_url, "--upstream-prompt", "text",
        "--model-path", str(model_dir), "--admission-mode", "off", log=tmp_path / "front.log",
    )  # fmt: skip
    yield front, tiny
    front.stop()
    tiny.kill()


async def load(front: Server, sent: list[int]) -> list[httpx.Response]:
    body = {"model": SERVED_NAME, "prompt": "failover", "max_tokens": 16, "ignore_eos": True}
    limit = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=front.base_url, timeout=120) as client:

        async def one() -> httpx.Response:
            async with limit:
                sent.append(1)
                return await client.post("/v1/completions", json=body)

        return await asyncio.gather(*(one() for _ in range(REQUESTS)))


def test_killing_an_upstream_under_load_loses_no_request(
    vllm: Server, pair: tuple[Server, Server]
) -> None:
    front, tiny = pair
    tiny.pause()
    sent: list[int] = []
    results: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: results.extend(asyncio.run(load(front, sent))))
    worker.start()
    assert wait_until(lambda: len(sent) >= 8, timeout=60)
    tiny.kill()
    worker.join(timeout=300)
    assert len(results) == REQUESTS
    assert [r.status_code for r in results] == [200] * REQUESTS
    assert all(r.json()["usage"]["completion_tokens"] == 16 for r in results)
    retried = front.log.read_text().count("upstream failed before the first token")
    assert retried >= 1  # some requests were on the dead upstream, and were served elsewhere
    assert front.answers("/ready")  # the survivor keeps the service ready

    # Each upstream has its own series: the dead one out of rotation with no queue figures
    # (inferwatch serve publishes no vllm:* ones, and a dead one none at all), vLLM in it.
    def scrape() -> str:
        return httpx.get(front.base_url + "/metrics", timeout=30).text

    def nothing_outstanding() -> bool:  # a stream's bookkeeping ends just after its answer
        page = scrape()
        return upstream_samples(page, "inferwatch_upstream_outstanding_requests") == {
            vllm.base_url: 0.0,
            tiny.base_url: 0.0,
        }

    assert wait_until(nothing_outstanding, timeout=30)
    page = scrape()
    assert upstream_samples(page, "inferwatch_upstream_up") == {
        vllm.base_url: 1.0,
        tiny.base_url: 0.0,
    }
    assert set(upstream_samples(page, "inferwatch_upstream_requests_waiting")) == {vllm.base_url}


def upstream_samples(page: str, name: str) -> dict[str, float]:
    return {
        s.labels["upstream"]: s.value
        for family in families(page)
        for s in family.samples
        if s.name == name
    }
