"""`inferwatch exporter` as a real subprocess on this GPU-less machine (real pynvml, no NVML)."""

from __future__ import annotations

import selectors
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.exposition import names, promtool_findings, value

INFERWATCH = str(Path(sys.executable).with_name("inferwatch"))


def _start(*args: str) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [INFERWATCH, "exporter", "--host", "127.0.0.1", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    if not selector.select(timeout=30):
        proc.kill()
        pytest.fail(f"exporter did not start: {proc.communicate(timeout=10)}")
    line = proc.stdout.readline().decode()
    assert "listening on http://127.0.0.1:" in line, line
    return proc, line.split("http://", 1)[1].rsplit("/metrics", 1)[0]


def _get(address: str, path: str, accept: str = "") -> tuple[int, str, str]:
    request = urllib.request.Request(f"http://{address}{path}", headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


@pytest.fixture(scope="module")
def exporter() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    proc, address = _start()
    yield proc, address
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_serves_gpu_up_0_without_a_gpu(exporter: tuple[subprocess.Popen[bytes], str]) -> None:
    _, address = exporter
    status, content_type, body = _get(address, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    assert value(body, "inferwatch_gpu_up") == 0
    assert value(body, "inferwatch_exporter_collect_errors_total", collector="gpu") >= 1
    assert value(body, "inferwatch_exporter_collect_errors_total", collector="host") == 0
    assert "inferwatch_host_memory_total_bytes" in names(body)
    assert "process_resident_memory_bytes" in names(body)
    assert promtool_findings(body) == ""


def test_health_openmetrics_and_unknown_path(exporter: tuple[subprocess.Popen[bytes], str]) -> None:
    _, address = exporter
    assert _get(address, "/health")[:2] == (200, "text/plain; charset=utf-8")
    status, content_type, body = _get(
        address, "/metrics", accept="application/openmetrics-text; version=1.0.0"
    )
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith("# EOF\n")
    assert "inferwatch_gpu_up 0.0" in body
    assert _get(address, "/nope")[0] == 404


def test_sigterm_stops_cleanly(exporter: tuple[subprocess.Popen[bytes], str]) -> None:
    proc, _ = exporter
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_collectors_option_limits_sources() -> None:
    proc, address = _start("--collectors", "host")
    try:
        body = _get(address, "/metrics")[2]
    finally:
        proc.terminate()
        proc.wait(10)
    assert "inferwatch_host_memory_used_bytes" in names(body)
    assert not any(n.startswith("inferwatch_gpu_") for n in names(body))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--collectors", "gpu,queue"], "unknown collector(s): queue"),
        (["--collectors", ","], "--collectors is empty"),
        (["--cache-seconds", "-1"], "--cache-seconds must be >= 0"),
        (["--nvml-timeout-seconds", "0"], "--nvml-timeout-seconds must be > 0"),
    ],
)
def test_bad_options_exit_2_with_a_message(args: list[str], message: str) -> None:
    result = subprocess.run(
        [INFERWATCH, "exporter", "--port", "0", *args], capture_output=True, timeout=30
    )
    assert result.returncode == 2
    assert message in result.stderr.decode()
