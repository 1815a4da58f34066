"""SIGTERM as Kubernetes sends it, against a real `inferwatch serve` process: readiness turns
503 at once, new work gets a fast 503 with Retry-After, accepted work finishes within the grace
period, what still runs at its end is cut with an error the client sees, and the process exits
0 in bounded time, even with a trace collector that never answers."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.serve_process import ServeProcess
from tests.support.waiting import wait_until

LONG = {"prompt": "go on", "max_tokens": 2000, "ignore_eos": True, "stream": True}


class _StreamReader(threading.Thread):
    """Reads one SSE stream to its end in the background."""

    def __init__(self, base_url: str, body: dict[str, object]) -> None:
        super().__init__(daemon=True)
        self.base_url, self.body = base_url, body
        self.status = 0
        self.events: list[str] = []
        self.started = threading.Event()

    def run(self) -> None:
        with (
            httpx.Client(base_url=self.base_url, timeout=60) as c,
            c.stream("POST", "/v1/completions", json=self.body) as r,
        ):
            self.status = r.status_code
            for line in r.iter_lines():
                if line.startswith("data: "):
                    self.events.append(line.removeprefix("data: "))
                    self.started.set()


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a hung OTLP collector."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield s.getsockname()[1]


def test_sigterm_drains_cuts_long_streams_and_exits_zero(blackhole: int) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{blackhole}",
        "OTEL_BSP_SCHEDULE_DELAY": "60000",  # spans wait in the queue until the exit flush
    }
    with ServeProcess("--shutdown-grace-seconds", "3", "--span-flush-seconds", "2", env=env) as srv:
        short = _StreamReader(srv.base_url, {"prompt": "hi", "max_tokens": 24, "stream": True})
        long = _StreamReader(srv.base_url, LONG)
        long.start()
        assert long.started.wait(60), f"the long stream never started ({long.status})"
        short.start()
        assert short.started.wait(60)
        sent = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        # At once: not ready, and new work refused fast with Retry-After.
        assert wait_until(
            lambda: httpx.get(srv.base_url + "/ready", timeout=5).status_code == 503, timeout=2
        )
        refused = httpx.post(
            srv.base_url + "/v1/completions", json={"prompt": "new", "max_tokens": 2}, timeout=5
        )
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "shutting_down"
        short.join(30)
        long.join(30)
        exit_code = srv.proc.wait(timeout=30)
        took = time.monotonic() - sent
        _, stderr = srv.proc.communicate(timeout=5)
    assert exit_code == 0, stderr[-2000:]
    # grace 3 s + cut + span flush bounded at 2 s (the collector never answers)
    assert took < 15, f"exit took {took:.1f} s"
    # The short stream finished normally within the grace period.
    assert short.status == 200 and short.events[-1] == "[DONE]"
    assert json.loads(short.events[-2])["choices"][0]["finish_reason"] == "length"
    # The long one was cut: an error event, then [DONE]; counted as our failure.
    assert long.status == 200 and long.events[-1] == "[DONE]"
    error = json.loads(long.events[-2])["error"]
    assert "shut down" in error["message"]
    logs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    finished = [e for e in logs if e.get("msg") == "request finished"]
    outcomes = sorted(e["outcome"] for e in finished)
    assert outcomes == ["completed", "failed", "rejected"], outcomes
    assert not any(e["outcome"] == "cancelled" for e in finished)  # not blamed on the client
