"""The dashboards and provisioning files are generated, committed and up to date; provisioning
wires exemplars to the Jaeger datasource the dashboards link to; dashboards/ stays free of the
service code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from alerts.dashboard_links import DASHBOARDS
from dashboards.datasources import JAEGER_UID, PROMETHEUS_UID, TRACE_ID_LABEL
from dashboards.generate import GENERATED, PROVISIONING, render
from dashboards.vllm import GENERATED as VLLM_GENERATED
from inferwatch.commands import generate

ROOT = Path(__file__).resolve().parents[2]


def test_the_generator_is_registered_and_renders_every_file() -> None:
    assert "dashboards.generate:render" in generate.GENERATORS
    files = render()
    assert {p for p in files if p.startswith(f"{GENERATED}/")} == {
        f"{GENERATED}/{name}.json" for name in ("overview", "engine", "gpu-host", "alerts")
    }
    assert {p for p in files if p.startswith(f"{VLLM_GENERATED}/")} == {
        f"{VLLM_GENERATED}/{name}.json" for name in ("overview", "engine", "alerts")
    }
    assert {p for p in files if p.startswith(PROVISIONING)} == {
        f"{PROVISIONING}/datasources/inferwatch.yml",
        f"{PROVISIONING}/dashboards/inferwatch.yml",
    }


def test_the_committed_files_are_what_the_code_renders() -> None:
    stale = [p for p, text in render().items() if (ROOT / p).read_text() != text]
    assert stale == [], "run `inferwatch generate`"


def test_each_dashboard_has_its_uid_title_and_no_database_id() -> None:
    boards = [json.loads(t) for p, t in render().items() if p.startswith(f"{GENERATED}/")]
    assert {(b["uid"], b["title"]) for b in boards} == {(d.uid, d.title) for d in DASHBOARDS}
    assert all(b["id"] is None and b["editable"] is False for b in boards)


def test_exemplars_open_in_the_jaeger_datasource_the_panels_link_to() -> None:
    files = render()
    provisioned = yaml.safe_load(files[f"{PROVISIONING}/datasources/inferwatch.yml"])
    by_type = {d["type"]: d for d in provisioned["datasources"]}
    assert set(by_type) == {"prometheus", "jaeger", "alertmanager"}
    prometheus, jaeger = by_type["prometheus"], by_type["jaeger"]
    assert (prometheus["uid"], prometheus["url"]) == (PROMETHEUS_UID, "http://prometheus:9090")
    (destination,) = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert destination == {**destination, "name": TRACE_ID_LABEL, "datasourceUid": JAEGER_UID}
    assert (jaeger["uid"], jaeger["url"]) == (JAEGER_UID, "http://jaeger:16686")
    alertmanager = by_type["alertmanager"]
    assert alertmanager["url"] == "http://alertmanager:9093"
    assert alertmanager["jsonData"]["implementation"] == "prometheus"
    links = [
        link["url"]
        for text in (t for p, t in files.items() if p.endswith(".json"))
        for panel in json.loads(text)["panels"]
        for link in panel.get("fieldConfig", {}).get("defaults", {}).get("links", [])
    ]
    assert links and all(f'"uid":"{JAEGER_UID}"' in url for url in links)


def test_the_provider_reads_the_generated_folder_read_only() -> None:
    provider = yaml.safe_load(render()[f"{PROVISIONING}/dashboards/inferwatch.yml"])
    (only,) = provider["providers"]
    assert only["type"] == "file" and only["allowUiUpdates"] is False
    assert only["options"]["path"].startswith("/")


def test_dashboards_import_nothing_of_the_service() -> None:
    """dashboards/ may read the alert spec, never inference/ (nor torch through it)."""
    code = (
        "import sys, dashboards.generate; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'inference', 'torch'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
        check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "[]"
