"""The real Prometheus 2.42 and Alertmanager 0.25 on loopback, with the generated files.

Prometheus loads the committed rule files plus a copy of the same spec rendered at a 1 s
interval (so an alert with `for:` fires within seconds), scrapes a prometheus_client target, and
notifies Alertmanager, whose tree (rendered from test values) delivers webhooks to a receiver in
this test. Alertmanager's inhibitions are checked through its v2 API.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from alerts.alertmanager import render_alertmanager
from alerts.annotations import Links
from alerts.rules import render_rules
from alerts.spec import SERVICE_JOB, SPEC, Timing

ROOT = Path(__file__).resolve().parents[2]
COMMITTED_RULES = sorted((ROOT / "alerts" / "generated").glob("*.rules.yml"))
FAST = Timing(
    name="fast",
    interval=1,
    rate_window=10,
    baseline_window=60,
    baseline_offset=10,
    min_baseline_samples=30,
    duration_scale=1 / 60,
)
TOKEN = "test-token-7f3a"
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(what: str, probe: Callable[[], T | None], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = probe()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Receiver:
    """Records every webhook POST: path, Authorization header, JSON body."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, dict[str, Any]]] = []
        lock = threading.Lock()
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    calls.append((self.path, self.headers.get("Authorization"), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def find(self, path: str, alertname: str) -> tuple[str | None, dict[str, Any]] | None:
        for call_path, auth, body in list(self.calls):
            names = {a["labels"].get("alertname") for a in body.get("alerts", [])}
            if call_path == path and alertname in names:
                return auth, body
        return None


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("stack")
    receiver = Receiver()
    token_file = tmp / "webhook.token"
    token_file.write_text(TOKEN + "\n")
    values = tmp / "values.yml"
    values.write_text(
        yaml.safe_dump(
            {
                "pager_url": f"{receiver.url}/pager",
                "ticket_url": f"{receiver.url}/tickets",
                "deadmans_switch_url": f"{receiver.url}/deadman",
                "service_webhook_url": f"{receiver.url}/service",
                "service_webhook_credentials_file": str(token_file),
                "runbook_url_base": "https://docs.example.org/runbooks.md",
            }
        )
    )
    (tmp / "alertmanager.yml").write_text(render_alertmanager(values))

    registry = CollectorRegistry()
    gpu = Gauge("inferwatch_gpu_utilization_ratio", "GPU busy", ["gpu", "uuid"], registry=registry)
    gpu.labels("0", "GPU-test").set(0.95)
    Gauge("inferwatch_gpu_up", "NVML ok", registry=registry).set(1)
    requests = Counter(
        "inferwatch_requests_total", "finished", ["model", "priority", "outcome"],
        registry=registry,
    )  # fmt: skip
    requests.labels("m1", "standard", "completed").inc(100)
    target, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    target_port = target.server_address[1]

    fast_dir = tmp / "fast"
    fast_dir.mkdir()
    links = Links("https://docs.example.org/runbooks.md", "https://grafana.example.org")
    for name, text in render_rules(SPEC, FAST, links).items():
        (fast_dir / name).write_text(text)
    am_port, prom_port = _free_port(), _free_port()
    (tmp / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(p) for p in COMMITTED_RULES]
                + [str(p) for p in sorted(fast_dir.glob("*.rules.yml"))],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                },
                "scrape_configs": [
                    {
                        "job_name": SERVICE_JOB,
                        "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                    }
                ],
            }
        )
    )
    am = _start(
        [
            "prometheus-alertmanager", f"--config.file={tmp / 'alertmanager.yml'}",
            f"--storage.path={tmp / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ],
        tmp / "alertmanager.log",
    )  # fmt: skip
    prom = _start(
        [
            "prometheus", f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            # Alerts that fire before the Alertmanager is discovered are dropped and resent
            # only after this delay (1m by default).
            "--rules.alert.resend-delay=2s",
        ],
        tmp / "prometheus.log",
    )  # fmt: skip
    am_url, prom_url = f"http://127.0.0.1:{am_port}", f"http://127.0.0.1:{prom_port}"
    try:
        with httpx.Client(timeout=5) as client:
            for url in (am_url, prom_url):
                _wait_for(f"{url} ready", lambda u=url: client.get(f"{u}/-/ready").is_success, 30)
            yield {"am": am_url, "prom": prom_url, "receiver": receiver, "client": client}
    finally:
        _stop(prom)
        _stop(am)
        target.shutdown()
        receiver.server.shutdown()


def test_prometheus_loads_and_evaluates_the_committed_rules(stack: dict[str, Any]) -> None:
    client: httpx.Client = stack["client"]
    committed = {str(p) for p in COMMITTED_RULES}

    def evaluated_groups() -> list[dict[str, Any]] | None:
        groups = client.get(f"{stack['prom']}/api/v1/rules").json()["data"]["groups"]
        mine = [g for g in groups if g["file"] in committed]
        done = all(not r["lastEvaluation"].startswith("0001") for g in mine for r in g["rules"])
        return mine if len(mine) == len(committed) and done else None

    groups = _wait_for("every committed rule evaluated once", evaluated_groups, 45)
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] == "ok", (group["name"], rule["name"], rule.get("lastError"))
            assert not rule.get("lastError"), (group["name"], rule["name"])
    # The same spec at 1 s evaluates against the scraped target.
    traffic = _wait_for(
        "a traffic recording from the scraped target",
        lambda: client.get(
            f"{stack['prom']}/api/v1/query", params={"query": "model:inferwatch_requests:rate10s"}
        ).json()["data"]["result"],
        20,
    )
    labels = traffic[0]["metric"]
    assert (labels["__name__"], labels["job"], labels["model"]) == (
        "model:inferwatch_requests:rate10s",
        SERVICE_JOB,
        "m1",
    )


def test_action_alert_reaches_the_service_webhook_with_the_bearer_token(
    stack: dict[str, Any],
) -> None:
    receiver: Receiver = stack["receiver"]
    auth, body = _wait_for(
        "InferwatchGPUSaturated at the service webhook",
        lambda: receiver.find("/service", "InferwatchGPUSaturated"),
        45,
    )
    assert auth == f"Bearer {TOKEN}"
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "service-webhook"
    (alert,) = [a for a in body["alerts"] if a["labels"]["alertname"] == "InferwatchGPUSaturated"]
    assert alert["status"] == "firing"
    assert alert["labels"]["action"] == "shed_low_priority"
    assert alert["labels"]["severity"] == "warning"
    assert alert["labels"]["job"] == SERVICE_JOB
    assert alert["annotations"]["runbook_url"].endswith("#inferwatchgpusaturated")
    assert alert["annotations"]["dashboard_url"].startswith(
        "https://grafana.example.org/d/inferwatch-gpu-host/"
    )
    assert f"&var-job={SERVICE_JOB}" in alert["annotations"]["dashboard_url"]
    _wait_for("Watchdog at the dead-man's switch",
              lambda: receiver.find("/deadman", "InferwatchWatchdog"), 20)  # fmt: skip
    # The controller hears the Watchdog too (with the token), so it can tell a broken
    # pipeline from resolved alerts.
    watchdog_auth, _ = _wait_for(
        "Watchdog at the service webhook",
        lambda: receiver.find("/service", "InferwatchWatchdog"),
        20,
    )
    assert watchdog_auth == f"Bearer {TOKEN}"
    # The same alert also files a ticket (continue: true; the tickets route waits 30 s to
    # group), without the service's token.
    ticket_auth, _ = _wait_for(
        "the same alert at tickets", lambda: receiver.find("/tickets", "InferwatchGPUSaturated"), 45
    )
    assert ticket_auth is None


def _post_and_read(stack: dict[str, Any], alerts: list[dict[str, str]], test: str) -> dict:
    client: httpx.Client = stack["client"]
    payload = [{"labels": {**labels, "test": test}} for labels in alerts]
    client.post(f"{stack['am']}/api/v2/alerts", json=payload).raise_for_status()

    def states() -> dict[str, dict] | None:
        found = client.get(
            f"{stack['am']}/api/v2/alerts", params={"filter": f'test="{test}"'}
        ).json()
        by_key = {f"{a['labels']['alertname']}/{a['labels']['severity']}/"
                  f"{a['labels'].get('instance', '')}": a["status"] for a in found}  # fmt: skip
        settled = len(by_key) == len(alerts) and any(
            s["state"] == "suppressed" for s in by_key.values()
        )
        return by_key if settled else None

    return _wait_for("alert states in Alertmanager", states, 15)


def test_critical_inhibits_warning_of_the_same_alert_and_model(stack: dict[str, Any]) -> None:
    name = "InferwatchErrorBudgetBurn"
    states = _post_and_read(
        stack,
        [
            {"alertname": name, "model": "m1", "severity": "critical"},
            {"alertname": name, "model": "m1", "severity": "warning"},
            {"alertname": "InferwatchHostCPUHigh", "model": "m1", "severity": "warning"},
        ],
        "severity",
    )
    assert states[f"{name}/critical/"]["state"] == "active"
    assert states[f"{name}/warning/"]["state"] == "suppressed"
    assert states[f"{name}/warning/"]["inhibitedBy"]
    assert states["InferwatchHostCPUHigh/warning/"]["state"] == "active"  # other alertname


def test_service_down_inhibits_per_model_alerts_of_that_instance(stack: dict[str, Any]) -> None:
    baseline = "InferwatchQueueDepthAboveBaseline"
    states = _post_and_read(
        stack,
        [
            {"alertname": "InferwatchServiceDown", "instance": "a:8000", "severity": "critical"},
            {"alertname": baseline, "instance": "a:8000", "model": "m1", "severity": "warning"},
            {"alertname": baseline, "instance": "b:8000", "model": "m1", "severity": "warning"},
        ],
        "down",
    )
    assert states["InferwatchServiceDown/critical/a:8000"]["state"] == "active"
    assert states[f"{baseline}/warning/a:8000"]["state"] == "suppressed"
    assert states[f"{baseline}/warning/b:8000"]["state"] == "active"
