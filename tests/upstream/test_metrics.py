"""In front of vLLM the metric contract holds: every `inferwatch_*` family is the catalog's
(type, help, labels, vocabulary), the KV-cache families are absent rather than invented (vLLM
publishes no blocks), latency is measured at the edge by priority, and the running figure is
vLLM's own `num_requests_running`, read from its /metrics at scrape time, in total and per
upstream."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from inference.telemetry.catalog import (
    CATALOG,
    KV_CACHE_FAMILIES,
    SERVICE_FAMILIES,
    UPSTREAM_FAMILIES,
)
from tests.support.catalog_check import disagreements, families_of, not_exported
from tests.support.exposition import families
from tests.support.waiting import wait_until
from tests.upstream.processes import SERVED_NAME, Server, front_of

OPENMETRICS = {"Accept": "application/openmetrics-text; version=1.0.0"}


def scrape(server: Server) -> str:
    return httpx.get(server.base_url + "/metrics", headers=OPENMETRICS, timeout=30).text


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample `name` with `labels` in a classic or OpenMetrics page."""
    for family in families(text, openmetrics=text.rstrip().endswith("# EOF")):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def test_the_contract_holds_with_no_kv_families(vllm: Server, front: Server) -> None:
    body = {"model": SERVED_NAME, "prompt": "contract", "max_tokens": 4, "priority": "premium"}
    assert httpx.post(front.base_url + "/v1/completions", json=body, timeout=60).status_code == 200
    exported = families_of(scrape(front))
    assert disagreements(exported, CATALOG) == {}
    assert {d.name for d in KV_CACHE_FAMILIES} & set(exported) == set()
    assert not_exported((*SERVICE_FAMILIES, *UPSTREAM_FAMILIES), exported) == set()
    page = scrape(front)
    assert sample(page, "inferwatch_build_info", backend="vllm-proxy", device="upstream") == 1
    assert sample(page, "inferwatch_upstream_up", upstream=vllm.base_url) == 1
    ttft = sample(page, "inferwatch_time_to_first_token_seconds_count", priority="premium")
    assert ttft is not None and ttft >= 1


def test_running_is_vllms_own_figure(vllm: Server, front: Server) -> None:
    """A long request holds one running sequence in vLLM; inferwatch's gauge shows that figure
    while it runs and 0 once it is over."""
    body = {"model": SERVED_NAME, "prompt": "run", "max_tokens": 1500, "ignore_eos": True}
    done = threading.Event()

    def long_request() -> None:
        httpx.post(front.base_url + "/v1/completions", json=body, timeout=300)
        done.set()

    worker = threading.Thread(target=long_request, daemon=True)
    worker.start()

    def both_say_one() -> bool:
        theirs = sample(
            httpx.get(vllm.base_url + "/metrics", timeout=30).text, "vllm:num_requests_running"
        )
        page = scrape(front)
        ours = sample(page, "inferwatch_requests_running", model=SERVED_NAME)
        each = sample(page, "inferwatch_upstream_requests_running", upstream=vllm.base_url)
        outstanding = sample(page, "inferwatch_upstream_outstanding_requests")
        return theirs == 1 and ours == 1 and each == 1 and outstanding == 1

    assert wait_until(both_say_one, timeout=60, interval=0.2) or done.is_set()
    assert done.wait(300)
    assert wait_until(
        lambda: sample(scrape(front), "inferwatch_requests_running", model=SERVED_NAME) == 0,
        timeout=30,
    )


@pytest.fixture(scope="module")
def unpolled_front(
    vllm: Server, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A front whose health loop reads vLLM's /metrics only when it starts (an hour between
    polls): any later figure it shows was read at scrape time."""
    log_dir = tmp_path_factory.mktemp("unpolled-front")
    with front_of(vllm, model_dir, log_dir, "--upstream-poll-seconds", "3600") as server:
        yield server


def test_upstream_figures_are_read_at_scrape_time(vllm: Server, unpolled_front: Server) -> None:
    """Another client's request on vLLM (sent to it directly) shows in the front's figures
    while it runs, and is gone once it is over, with no poll in between."""
    front = unpolled_front
    body = {"model": SERVED_NAME, "prompt": "direct", "max_tokens": 1500, "ignore_eos": True}
    done = threading.Event()

    def direct_request() -> None:
        httpx.post(vllm.base_url + "/v1/completions", json=body, timeout=300)
        done.set()

    def running_on_front() -> float | None:
        return sample(scrape(front), "inferwatch_upstream_requests_running", upstream=vllm.base_url)

    assert running_on_front() == 0
    threading.Thread(target=direct_request, daemon=True).start()
    seen: list[float | None] = []

    def shown_or_over() -> bool:
        over = done.is_set()  # before the scrape: a 1 read after it still counts
        seen.append(running_on_front())
        return seen[-1] == 1 or over

    assert wait_until(shown_or_over, timeout=60, interval=0.2)
    assert seen[-1] == 1, f"the front never showed the running request: {seen}"
    assert done.wait(300)
    assert wait_until(lambda: running_on_front() == 0, timeout=30, interval=0.2)
