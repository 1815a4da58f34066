"""The admin endpoints over real HTTP: off (404) without a token, 401 without the right one,
the Alertmanager webhook (400 malformed, accepted, duplicate not applied twice, resolved lets
the level fall after the cooldown), the manual override, and what each level does to traffic,
with the metrics and span attributes that show it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.admission.conftest import ADMIN, level, post, running
from tests.admission.test_notifications import alert, payload
from tests.support.exposition import total
from tests.support.service import serve
from tests.support.waiting import wait_until


def test_without_a_token_the_admin_endpoints_do_not_exist() -> None:
    thread, *_ = serve()
    with thread as base_url, httpx.Client(base_url=base_url) as c:
        for method, path in (
            ("POST", "/admin/alerts"),
            ("GET", "/admin/degradation"),
            ("POST", "/admin/degradation"),
        ):
            r = c.request(method, path, headers=ADMIN, json={"level": 3, "reason": "x"})
            assert r.status_code == 404, (method, path)
            assert r.json()["error"]["message"] == "Not Found"


def test_a_token_file_that_is_too_short_stops_the_start(tmp_path: Path) -> None:
    weak = tmp_path / "weak"
    weak.write_text("secret\n")
    with pytest.raises(ValueError, match="at least 16"), running(admin_token_file=str(weak)):
        pass


def test_webhook_401_400_accepted_duplicate(token_file: Path) -> None:
    with running(admin_token_file=str(token_file), degradation_dwell_seconds=0) as svc:
        body = payload(alert(action="cap_tokens"))
        with svc.client() as c:
            assert c.post("/admin/alerts", json=body).status_code == 401
            wrong = c.post("/admin/alerts", json=body, headers={"authorization": "Bearer no"})
            assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
            assert c.get("/admin/degradation").status_code == 401
            bad = c.post("/admin/alerts", content=b"{not json", headers=ADMIN)
            assert bad.status_code == 400
            v3 = c.post("/admin/alerts", json={**body, "version": "3"}, headers=ADMIN)
            assert v3.status_code == 400 and "version 4" in v3.json()["error"]["message"]
            assert level(svc) == 0  # nothing applied by any of them
            first = c.post("/admin/alerts", json=body, headers=ADMIN)
            assert first.status_code == 200 and first.json() == {"status": "accepted", "level": 1}
            again = c.post("/admin/alerts", json=body, headers=ADMIN)
            assert again.json() == {"status": "duplicate", "level": 1}
            text = svc.metrics_text()
        for status, count in (("unauthorized", 2), ("invalid", 2), ("accepted", 1)):
            assert total(text, "inferwatch_alert_notifications_total", status=status) == count
        assert total(text, "inferwatch_alert_notifications_total", status="duplicate") == 1
        ups = total(
            text, "inferwatch_degradation_transitions_total", direction="up", trigger="alertmanager"
        )
        assert ups == 1  # the duplicate was not applied twice
        assert total(text, "inferwatch_degradation_level") == 1


def test_resolved_lets_the_level_fall_after_the_cooldown(token_file: Path) -> None:
    with running(
        admin_token_file=str(token_file), degradation_dwell_seconds=0,
        degradation_cooldown_seconds=1.0, local_evaluation_seconds=0.1,
    ) as svc, svc.client() as c:  # fmt: skip
        c.post("/admin/alerts", json=payload(alert(action="cap_tokens")), headers=ADMIN)
        assert level(svc) == 1
        resolved = payload(alert(action="cap_tokens", status="resolved"))
        assert c.post("/admin/alerts", json=resolved, headers=ADMIN).json()["status"] == "accepted"
        assert wait_until(lambda: level(svc) == 0, timeout=10)
        history = c.get("/admin/degradation", headers=ADMIN).json()["history"]
        assert [(h["direction"], h["trigger"]) for h in history] == [
            ("up", "alertmanager"),
            ("down", "alertmanager"),
        ]


def test_manual_override_and_what_the_top_level_does(token_file: Path) -> None:
    with running(admin_token_file=str(token_file)) as svc, svc.client() as c:
        bad = c.post("/admin/degradation", json={"level": 9, "reason": "x"}, headers=ADMIN)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "level"
        assert c.post("/admin/degradation", json={"level": 3}, headers=ADMIN).status_code == 400
        r = c.post("/admin/degradation", json={"level": 3, "reason": "incident 7"}, headers=ADMIN)
        assert r.status_code == 200 and r.json()["level"] == 3
        premium = post(c, "premium", max_tokens=400)
        assert premium.status_code == 200
        assert premium.json()["usage"]["completion_tokens"] <= 256  # level 3 caps premium
        for priority in ("standard", "batch"):
            refused = post(c, priority)
            assert refused.status_code == 503, priority
            assert refused.json()["error"]["code"] == "shed"
            assert 1 <= int(refused.headers["retry-after"]) <= 120
            assert 0 < int(refused.headers["retry-after-ms"]) <= 120_000
        snap = c.get("/admin/degradation", headers=ADMIN).json()
        assert snap["level"] == 3 and snap["override"]["reason"] == "incident 7"
        assert snap["history"][-1]["trigger"] == "manual" and snap["since"].endswith("Z")
        assert snap["shed"] == ["batch", "standard"]
        assert set(snap["triggers"]) == {"local", "alertmanager"}
        assert snap["admission"]["breaker"] == "closed"
        text = svc.metrics_text()
        assert total(text, "inferwatch_degradation_level") == 3
        assert total(text, "inferwatch_request_rejections_total", reason="shed") == 2
        manual = total(
            text, "inferwatch_degradation_transitions_total", direction="up", trigger="manual"
        )
        assert manual == 1
        limit = total(text, "inferwatch_admission_concurrency_limit", priority="premium")
        assert limit == 2 * 256 * 16 * 0.5  # the ceiling, at level 3's tight concurrency
        back = c.post("/admin/degradation", json={"level": None, "reason": "over"}, headers=ADMIN)
        assert back.json()["override"] is None
    spans = [s for s in svc.spans.get_finished_spans() if s.kind.name == "SERVER"]
    decisions = {
        (s.attributes or {}).get("inferwatch.admission.decision")
        for s in spans
        if (s.attributes or {}).get("inferwatch.degradation_level") == 3
    }
    assert decisions == {"capped", "shed"}


def test_the_log_line_of_a_transition(token_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    with (
        running(admin_token_file=str(token_file)) as svc,
        svc.client() as c,
        caplog.at_level("WARNING", logger="inference.admission.controller"),
    ):
        c.post("/admin/degradation", json={"level": 2, "reason": "drill"}, headers=ADMIN)
    lines = [r for r in caplog.records if r.getMessage() == "degradation level changed"]
    assert len(lines) == 1
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields == {
        "from_level": 0, "to_level": 2, "direction": "up", "trigger": "manual",
        "reason": "manual: drill",
    }  # fmt: skip
    json.dumps(fields)
