"""`inferwatch bench` against the real service over loopback, and its retry rule (the openai
client's: a server-given delay within 60 s wins, else exponential backoff with jitter)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from inferwatch.bench.client import retry_delay
from inferwatch.bench.report import percentile
from inferwatch.bench.workload import parse_mix
from tests.support.service import RunningService, serve, small_engine

INFERWATCH = Path(sys.executable).parent / "inferwatch"


@pytest.fixture(scope="module")
def service() -> Iterator[RunningService]:
    thread, app, backend, spans = serve(small_engine(max_waiting=4, max_num_seqs=2))
    with thread as base_url:
        yield RunningService(app, backend, spans, base_url)


def _bench(service: RunningService, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "result.json"
    cmd = [str(INFERWATCH), "bench", "--base-url", service.base_url + "/v1", "--output", str(out)]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "lost=" in proc.stdout
    return json.loads(out.read_text())


def test_closed_loop_reports_every_priority(service: RunningService, tmp_path: Path) -> None:
    result = _bench(
        service, tmp_path, "--concurrency", "2", "--requests", "12", "--max-tokens", "6",
        "--duration", "120",
    )  # fmt: skip
    total = result["total"]
    assert total["sent"] == 12 and total["completed"] == 12 and total["lost"] == 0
    classes = result["by_priority"]
    assert set(classes) == {"premium", "standard", "batch"}
    for figures in classes.values():
        assert figures["ttft"]["p50"] > 0 and figures["tpot"]["p99"] > 0
        assert figures["itl"]["p99"] is not None and figures["output_tokens_per_s"] > 0


def test_open_loop_overload_is_refused_visibly_and_retried(
    service: RunningService, tmp_path: Path
) -> None:
    """A queue bound of 4 and 2 running: a burst of 40 is mostly refused with 503; nothing is
    lost, and retries that obey Retry-After get some of it through."""
    result = _bench(
        service, tmp_path, "--rate", "200", "--requests", "40", "--max-tokens", "8",
        "--max-retries", "3", "--duration", "60",
    )  # fmt: skip
    total = result["total"]
    assert total["sent"] == 40 and total["lost"] == 0
    refusals = sum(c["refusals_by_status"].get("503", 0) for c in result["by_priority"].values())
    retries = sum(c["retries"] for c in result["by_priority"].values())
    assert refusals > 0 and retries > 0
    assert total["completed"] > 6  # more than fits at once: retries succeeded


def test_retry_delay_follows_the_openai_client() -> None:
    rng = random.Random(0)

    def response(**headers: str) -> httpx.Response:
        return httpx.Response(503, headers=headers)

    assert retry_delay(response(**{"retry-after": "2"}), 0, rng) == 2.0
    assert retry_delay(response(**{"retry-after-ms": "250"}), 0, rng) == 0.25
    assert retry_delay(response(**{"retry-after": "600"}), 0, rng) is None  # > 120 s: give up
    # Nothing usable from the server: exponential backoff with up to 25% jitter.
    for attempt, cap in ((0, 0.5), (3, 4.0), (9, 8.0)):
        delay = retry_delay(response(**{"retry-after": "soon"}), attempt, rng)
        assert delay is not None and 0.75 * cap <= delay <= cap


def test_mix_and_percentiles() -> None:
    assert parse_mix("premium=1,batch=3") == {"premium": 0.25, "batch": 0.75}
    for bad in ("gold=1", "premium", "premium=-1", "premium=0"):
        with pytest.raises(ValueError, match="--mix"):
            parse_mix(bad)
    assert percentile([5, 1, 3, 2, 4], 50) == 3 and percentile([], 99) is None
    assert percentile(list(range(1, 101)), 99) == 99
