"""The generated files pass the real promtool/amtool checks, and the tree routes as designed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from alerts.alertmanager import render_alertmanager
from alerts.dashboard_links import dashboard_url
from alerts.generate import render
from alerts.promtool_format import render_template
from alerts.spec import SPEC
from alerts.values import load_grafana_url
from inference.telemetry.catalog import metric_names
from tests.support.metric_refs import (
    expr_metrics,
    recording_refs,
    referenced_metrics,
)

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "alerts" / "generated"
AM_CONFIG = GENERATED / "alertmanager.yml"
RULE_FILES = sorted(GENERATED.glob("*.rules.yml"))
GRAFANA = load_grafana_url()
REQUIRED_ALERTS = {
    "InferwatchTimeToFirstTokenAboveBaseline", "InferwatchRequestLatencyAboveBaseline",
    "InferwatchErrorRatioAboveBaseline", "InferwatchQueueDepthAboveBaseline",
    "InferwatchQueueWaitAboveBaseline", "InferwatchInterTokenLatencyAboveBaseline",
    "InferwatchGPUSaturated", "InferwatchKVCacheSaturated", "InferwatchQueueDepthHigh",
    "InferwatchRequestLatencyHigh", "InferwatchErrorRatioHigh", "InferwatchRefusalRatioHigh",
    "InferwatchErrorBudgetBurn", "InferwatchServiceDown", "InferwatchGPUDown",
    "InferwatchDegradationActive", "InferwatchWatchdog",
}  # fmt: skip


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def _rules() -> list[dict]:
    groups = [g for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"]]
    return [rule for group in groups for rule in group["rules"]]


def test_committed_files_are_what_the_spec_renders() -> None:
    for rel, text in render().items():
        assert (ROOT / rel).read_text() == text, f"{rel} drifted; run `inferwatch generate`"


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(rule_file: Path) -> None:
    result = _run("promtool", "check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_required_alert_exists_with_conventions() -> None:
    alerts = [r for r in _rules() if "alert" in r]
    assert {a["alert"] for a in alerts} >= REQUIRED_ALERTS
    for alert in alerts:
        labels, notes = alert["labels"], alert["annotations"]
        assert labels["severity"] in {"critical", "warning", "info", "none"}, alert["alert"]
        assert "$value" not in str(labels), alert["alert"]
        assert notes["runbook_url"].endswith("#" + alert["alert"].lower())
        assert notes["dashboard_url"].startswith(dashboard_url(alert["alert"], GRAFANA))
        assert notes["summary"] and notes["description"], alert["alert"]
    baseline = [a for a in alerts if a["alert"].endswith("AboveBaseline")]
    # Against its own baseline, its fleet's, and the cold start.
    assert len(baseline) == 3 * len(SPEC.baselines)
    assert {a["labels"]["basis"] for a in baseline} == {"baseline", "fleet", "cold_start"}
    assert all(a["labels"]["severity"] == "warning" and a["labels"]["action"] for a in baseline)
    records = [r["record"] for r in _rules() if "record" in r]
    assert all(len(name.split(":")) == 3 for name in records)  # level:metric:operation


def test_runbook_has_an_anchor_for_every_alert() -> None:
    runbook = (GENERATED / "runbooks.md").read_text()
    for name in {r["alert"] for r in _rules() if "alert" in r}:
        assert f"\n## {name}\n" in runbook
    for path in re.findall(r"`(alerts/generated/tests/[\w.]+)`", runbook):
        assert (ROOT / path).is_file(), f"runbooks.md points at {path}, which is not generated"


def test_amtool_check_config() -> None:
    result = _run("amtool", "check-config", str(AM_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["severity=critical", "alertname=InferwatchServiceDown"], "pager"),
        (["severity=warning", "alertname=InferwatchHostCPUHigh"], "tickets"),
        (["severity=info", "alertname=Anything"], "blackhole"),
        # The controller hears the Watchdog too, to tell a broken pipeline from a resolved alert.
        (["severity=none", "alertname=InferwatchWatchdog"], "deadmans-switch,service-webhook"),
        (
            ["severity=warning", "action=shed_low_priority", "alertname=InferwatchGPUSaturated"],
            "service-webhook,tickets",
        ),
        (["severity=critical", "action=cap_tokens", "alertname=X"], "service-webhook,pager"),
    ],
)
def test_amtool_routes(labels: list[str], receivers: str) -> None:
    result = _run(
        "amtool", "config", "routes", "test", f"--config.file={AM_CONFIG}",
        f"--verify.receivers={receivers}", *labels,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


TEST_VALUES = (
    "pager_url: http://127.0.0.1:1/p\nticket_url: http://127.0.0.1:1/t\n"
    "deadmans_switch_url: http://127.0.0.1:1/d\n"
    "service_webhook_url: http://127.0.0.1:1/hook\n"
    "service_webhook_credentials_file: /run/secret/token\n"
    "runbook_url_base: https://docs.example.org/runbooks.md\n"
    "grafana_url: https://grafana.example.org/\n"
)


def test_alertmanager_takes_urls_and_token_file_from_values(tmp_path: Path) -> None:
    values = tmp_path / "values.yml"
    values.write_text(TEST_VALUES)
    config = yaml.safe_load(render_alertmanager(values))
    hook = next(r for r in config["receivers"] if r["name"] == "service-webhook")
    webhook = hook["webhook_configs"][0]
    assert webhook["url"] == "http://127.0.0.1:1/hook"
    assert webhook["http_config"]["authorization"]["credentials_file"] == "/run/secret/token"
    values.write_text("pager_url: http://127.0.0.1:1/p\n")
    with pytest.raises(ValueError, match="missing"):
        render_alertmanager(values)


def test_runbook_urls_take_their_base_from_values(tmp_path: Path) -> None:
    """A deployment's base reaches every alert and every promtool expectation; anchors stay."""
    values = tmp_path / "values.yml"
    values.write_text(TEST_VALUES)
    files = render(values_path=values)
    committed_base = "alerts/generated/runbooks.md#"
    for rel, text in files.items():
        if rel.endswith(".yml"):
            assert committed_base not in text, rel
    guards = yaml.safe_load(files["alerts/generated/guards.rules.yml"])["groups"][0]["rules"]
    url = guards[0]["annotations"]["runbook_url"]
    assert url == "https://docs.example.org/runbooks.md#" + guards[0]["alert"].lower()
    # The Grafana base reaches every dashboard_url, the runbook's links and promtool's too.
    for rel, text in files.items():
        if rel.endswith((".yml", ".md")):
            assert f"{GRAFANA}/d/" not in text, rel
    panel = guards[0]["annotations"]["dashboard_url"]
    assert panel.startswith(dashboard_url(guards[0]["alert"], "https://grafana.example.org"))
    assert "https://grafana.example.org/d/" in files["alerts/generated/runbooks.md"]


def test_dashboard_urls_keep_the_alerts_labels_as_dashboard_variables() -> None:
    """Prometheus renders the link per alert (promtool checks the rendered text in every
    generated test): each variable the alert has a label for, escaped as Go's urlquery does."""
    template = next(a for a in _rules() if a.get("alert") == "InferwatchKVCacheSaturated")
    labels = {"job": "inferwatch", "instance": "10.0.0.7:8000", "model": "tiny"}
    rendered = render_template(template["annotations"]["dashboard_url"], labels)
    assert rendered == (
        dashboard_url("InferwatchKVCacheSaturated", GRAFANA)
        + "&var-job=inferwatch&var-instance=10.0.0.7%3A8000&var-model=tiny"
    )


def test_every_queried_metric_is_in_the_metric_catalog() -> None:
    """The catalog is the code's own metric definitions; docs/metrics.md is generated from it."""
    declared = metric_names()
    referenced = referenced_metrics(RULE_FILES)
    assert referenced == referenced_metrics(SPEC)
    assert "inferwatch_time_to_first_token_seconds" in referenced  # _bucket maps to the family
    assert referenced <= declared, f"not in the catalog: {sorted(referenced - declared)}"


def test_metric_scanner_sees_through_promql_syntax() -> None:
    expr = (
        'sum by (model, le) (rate(foo_bucket{le=~"1(\\\\.0)?", job="up"}[5m] offset 1h)) '
        "/ on(model) group_left() bar:baz:rate5m > 0.5 and absent(up) or vector(1)"
    )
    assert expr_metrics(expr) == {"foo_bucket"}
    assert recording_refs(expr) == {"bar:baz:rate5m"}


def test_every_recording_rule_read_is_defined_before_it_is_read() -> None:
    """Within a group rules run in order; a rule reading a later one sees the previous cycle."""
    for rule_file in RULE_FILES:
        defined: set[str] = set()
        for group in yaml.safe_load(rule_file.read_text())["groups"]:
            for rule in group["rules"]:
                missing = recording_refs(rule["expr"]) - defined
                assert not missing, (rule_file.name, rule.get("record") or rule["alert"], missing)
                if "record" in rule:
                    defined.add(rule["record"])


def test_the_docs_state_the_measured_detection_delays() -> None:
    """docs/alerting.md's delay table is the runbook's (both from the measurement)."""
    from alerts.detection_delays import measured_delays
    from alerts.promql_text import duration

    docs = (ROOT / "docs" / "alerting.md").read_text()
    runbook = (GENERATED / "runbooks.md").read_text()
    for d in measured_delays(SPEC):
        row = (
            f"| `{d.alert}` | {d.step} | {duration(d.on_evaluation[0])} | "
            f"{duration(d.on_evaluation[1])} | {duration(d.between[1])} |"
        )
        assert row in runbook and row in docs, row
