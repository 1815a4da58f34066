"""`inferwatch stack up` (what `make run` starts) with real processes on loopback: every target
up, Alertmanager wired to Prometheus and to the service's webhook with the run's own token, and
Ctrl-C stopping everything; without the Prometheus/Alertmanager binaries it says so and runs
the rest."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
import yaml

from deploy.stack import Stack, StackConfig
from tests.support.serve_process import free_port
from tests.support.waiting import wait_until

INFERWATCH = Path(sys.executable).parent / "inferwatch"


def _targets(prometheus: str) -> list[tuple[str, str]] | None:
    answer = httpx.get(prometheus + "/api/v1/targets", timeout=5)
    if answer.status_code != 200:  # 503 "Service Unavailable" while Prometheus starts
        return None
    body = answer.json()
    return sorted((t["labels"]["job"], t["health"]) for t in body["data"]["activeTargets"])


def _stack_up(tmp_path: Path, *extra: str) -> tuple[dict[str, int], subprocess.Popen[str]]:
    """`inferwatch stack up` on free ports, in a session of its own (so a failed test can kill
    every part), getting Ctrl-C as from a terminal."""
    ports = {name: free_port() for name in ("svc", "prom", "am", "exp")}
    cmd = [
        str(INFERWATCH), "stack", "up", "--run-dir", str(tmp_path), "--port", str(ports["svc"]),
        "--prometheus-port", str(ports["prom"]), "--alertmanager-port", str(ports["am"]),
        "--exporter-port", str(ports["exp"]), *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=_terminal_sigint, start_new_session=True,
    )  # fmt: skip
    return ports, proc


def test_stack_up_starts_the_loop_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    ports, proc = _stack_up(tmp_path, "--scrape-interval", "1")
    prometheus = f"http://127.0.0.1:{ports['prom']}"
    try:
        assert wait_until(lambda: (tmp_path / "prometheus.yml").exists(), timeout=60)
        up = [("inferwatch", "up"), ("inferwatch-exporter", "up")]
        assert wait_until(lambda: _safe(_targets, prometheus) == up, timeout=240), proc.poll()
        managers = httpx.get(prometheus + "/api/v1/alertmanagers", timeout=5).json()
        urls = [a["url"] for a in managers["data"]["activeAlertmanagers"]]
        assert urls == [f"http://127.0.0.1:{ports['am']}/api/v2/alerts"]
        routing = yaml.safe_load((tmp_path / "alertmanager.yml").read_text())
        webhook = next(r for r in routing["receivers"] if r["name"] == "service-webhook")
        config = webhook["webhook_configs"][0]
        assert config["url"] == f"http://127.0.0.1:{ports['svc']}/admin/alerts"
        token_file = Path(config["http_config"]["authorization"]["credentials_file"])
        assert token_file.parent == tmp_path and token_file.stat().st_mode & 0o077 == 0
        answer = httpx.post(
            f"http://127.0.0.1:{ports['svc']}/v1/completions",
            json={"prompt": "hello", "max_tokens": 2}, timeout=60,
        )  # fmt: skip
        assert answer.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out = _communicate_or_kill(proc, timeout=90)
    assert proc.returncode == 0, out
    assert f"prometheus:   {prometheus}" in out
    assert not _safe(httpx.get, f"http://127.0.0.1:{ports['svc']}/health")  # all stopped


def _terminal_sigint() -> None:
    """The stack gets Ctrl-C as from a terminal even when this suite was started by a
    non-interactive shell's `&`, which leaves SIGINT ignored in every child (and Python keeps
    an ignored SIGINT ignored): all three suite runs at once in the background failed so."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _communicate_or_kill(proc: subprocess.Popen[str], timeout: float) -> str:
    """Its output once it has exited; past `timeout`, see _kill_and_fail."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_and_fail(proc, timeout, lambda: proc.communicate()[0])
    return out


def _kill_and_fail(
    proc: subprocess.Popen[str], timeout: float, output: Callable[[], object]
) -> NoReturn:
    """Its whole session is killed (no Prometheus or service left running after a failed
    test), then the test fails with what it printed."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    pytest.fail(f"the stack did not stop within {timeout:.0f} s of its signal:\n{output()}")


def test_sigterm_stops_every_part_too(tmp_path: Path) -> None:
    """A supervisor's SIGTERM takes Ctrl-C's path: every part is stopped, none is orphaned."""
    ports, proc = _stack_up(tmp_path, "--serve-args", "--model tiny")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    try:
        started = wait_until(lambda: any("Ctrl-C" in line for line in lines), timeout=240)
        assert started, (proc.poll(), lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            _kill_and_fail(proc, 90, lambda: lines)
    reader.join(timeout=30)
    answering = [p for p in ports.values() if _safe(httpx.get, f"http://127.0.0.1:{p}/")]
    with contextlib.suppress(ProcessLookupError):  # orphans of a failed stop: not left behind
        os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, lines
    assert answering == []  # every part has stopped


def _safe(call, *args):  # type: ignore[no-untyped-def]
    try:
        return call(*args)
    except httpx.HTTPError:
        return None


def test_without_prometheus_or_alertmanager_it_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert shutil.which("prometheus") is None
    said: list[str] = []
    parts = Stack(StackConfig(run_dir=tmp_path), say=said.append).prepare()
    assert [p.name for p in parts] == ["service", "exporter"]
    assert any(line.startswith("prometheus: not found") for line in said)
    assert any(line.startswith("alertmanager: not found") for line in said)


def test_a_runner_may_hand_in_its_own_rule_files(tmp_path: Path) -> None:
    """The end-to-end test's faster copy of the rules replaces the committed files."""
    if shutil.which("prometheus") is None:
        pytest.skip("needs the prometheus binary")
    rules = [tmp_path / "fast.rules.yml"]
    config = StackConfig(run_dir=tmp_path, rule_files=rules)
    Stack(config, say=lambda _: None).prepare()
    rendered = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    assert rendered["rule_files"] == [str(rules[0])]
