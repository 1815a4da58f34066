"""A real Alertmanager 0.25 (the Debian package) on loopback, running a test copy of the
generated configuration whose service webhook points at the real service's `/admin/alerts`
with the real token file, delivers a firing alert with an `action`; the level moves."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import yaml

from alerts.alertmanager import render_alertmanager
from alerts.spec import Action
from tests.admission.conftest import ADMIN, level, running
from tests.alerts.test_live_pipeline import _free_port, _start, _stop, _wait_for
from tests.support.exposition import total


def test_alertmanager_delivers_a_firing_alert_to_the_real_endpoint(
    tmp_path: Path, token_file: Path
) -> None:
    with running(admin_token_file=str(token_file), degradation_dwell_seconds=0) as svc:
        values = tmp_path / "values.yml"
        values.write_text(
            yaml.safe_dump(
                {
                    "pager_url": f"{svc.base_url}/nowhere/pager",
                    "ticket_url": f"{svc.base_url}/nowhere/tickets",
                    "deadmans_switch_url": f"{svc.base_url}/nowhere/deadman",
                    "service_webhook_url": f"{svc.base_url}/admin/alerts",
                    "service_webhook_credentials_file": str(token_file),
                    "runbook_url_base": "https://docs.example.org/runbooks.md",
                }
            )
        )
        config = tmp_path / "alertmanager.yml"
        config.write_text(render_alertmanager(values))
        port = _free_port()
        am = _start(
            [
                "prometheus-alertmanager", f"--config.file={config}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
            ],
            tmp_path / "alertmanager.log",
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(timeout=5) as client:
                _wait_for("alertmanager ready", lambda: client.get(f"{url}/-/ready").is_success, 30)
                now = datetime.now(UTC)
                alert = {
                    "labels": {
                        "alertname": "InferwatchQueueWaitAboveBaseline",
                        "action": Action.CAP_TOKENS.value, "severity": "warning",
                        "model": "inferwatch-tiny", "instance": "127.0.0.1:8000",
                        "job": "inferwatch", "basis": "cold_start",
                    },
                    "annotations": {"summary": "p95 queue wait above its baseline"},
                    "startsAt": now.isoformat(),
                    "endsAt": (now + timedelta(minutes=5)).isoformat(),
                }  # fmt: skip
                assert client.post(f"{url}/api/v2/alerts", json=[alert]).is_success
                _wait_for("the level to move", lambda: level(svc) >= 1, 30)
        finally:
            _stop(am)
        with svc.client() as c:
            snap = c.get("/admin/degradation", headers=ADMIN).json()
        text = svc.metrics_text()
    assert total(text, "inferwatch_alert_notifications_total", status="accepted") >= 1
    assert total(text, "inferwatch_alert_notifications_total", status="unauthorized") == 0
    assert snap["history"][0]["trigger"] == "alertmanager"
    assert "InferwatchQueueWaitAboveBaseline (cap_tokens" in snap["history"][0]["reason"]
    assert snap["reasons"][0]["detail"].startswith("p95 queue wait above its baseline")
    assert (
        subprocess.run(["amtool", "check-config", str(config)], capture_output=True).returncode == 0
    )
