"""What the Prometheus operator and Grafana's sidecar pick up: the ServiceMonitor (the scrape
configuration the operator writes for us), the PrometheusRule (exactly the generated rule
groups) and one ConfigMap per generated dashboard.

Exemplars need the operator's Prometheus to run with `enableFeatures: [exemplar-storage]`, and
its serviceMonitorSelector / ruleSelector must match these labels (docs/deployment.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath

import yaml

from alerts.promql_text import duration
from deploy import topology as t
from deploy.k8s.names import APP, HTTP_PORT, SELECTOR, Manifest, manifest, metadata

MONITORING = "monitoring.coreos.com/v1"


def service_monitor() -> Manifest:
    """The operator names the job after the Service (`inferwatch`), as the rules expect."""
    return manifest(
        MONITORING,
        "ServiceMonitor",
        metadata(APP),
        spec={
            "selector": {"matchLabels": SELECTOR},
            "endpoints": [
                {
                    "port": HTTP_PORT,
                    "path": t.METRICS_PATH,
                    "interval": duration(t.SCRAPE_INTERVAL_SECONDS),
                    "scrapeTimeout": duration(min(10.0, t.SCRAPE_INTERVAL_SECONDS)),
                }
            ],
        },
    )


def prometheus_rule(rule_files: Mapping[str, str]) -> Manifest:
    """Every group of every generated rule file, in file order, unchanged."""
    groups = [group for text in rule_files.values() for group in yaml.safe_load(text)["groups"]]
    return manifest(MONITORING, "PrometheusRule", metadata(APP), spec={"groups": groups})


def dashboard_config_maps(dashboards: Mapping[str, str]) -> list[Manifest]:
    """One ConfigMap per dashboard: a client-side apply keeps a copy of each object in an
    annotation limited to 256 KiB, which all dashboards together could pass."""
    maps = []
    for path, text in dashboards.items():
        name = PurePosixPath(path).name
        stem = re.sub(r"[^a-z0-9]+", "-", PurePosixPath(path).stem.lower()).strip("-")
        maps.append(
            manifest(
                "v1",
                "ConfigMap",
                metadata(
                    f"{APP}-dashboard-{stem}",
                    labels={"grafana_dashboard": "1"},
                    annotations={"grafana_folder": APP},
                ),
                data={name: text},
            )
        )
    return maps
