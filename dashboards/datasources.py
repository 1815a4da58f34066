"""Grafana's datasources and dashboard provider for the docker-compose stack, and the Jaeger uid
the dashboards link to.

The uids are constants shared by the provisioning files and the dashboards: an exemplar's
trace id opens in the datasource whose uid the Prometheus datasource names in
`exemplarTraceIdDestinations`, and every latency panel's Jaeger link names the same uid, so the
two cannot point at different places. Hostnames are the compose service names.
"""

from __future__ import annotations

import json
from typing import Any

from alerts.spec import SERVICE_JOB

PROMETHEUS_UID = "prometheus"
JAEGER_UID = "jaeger"
ALERTMANAGER_UID = "alertmanager"
PROMETHEUS_URL = "http://prometheus:9090"
JAEGER_URL = "http://jaeger:16686"
ALERTMANAGER_URL = "http://alertmanager:9093"
# Grafana's $__rate_interval is max($__interval + scrape interval, 4 x scrape interval): it must
# know the scrape interval, which is deploy/topology.py's SCRAPE_INTERVAL_SECONDS.
SCRAPE_INTERVAL = "15s"
TRACE_ID_LABEL = "trace_id"  # the exemplar label the service's histograms carry
TRACED_SERVICE = SERVICE_JOB  # service.name of the spans (inference/telemetry/tracing.py)

# Where the compose stack mounts them (deploy/compose.py): dashboards/provisioning at
# /etc/grafana/provisioning, dashboards/generated here.
DASHBOARDS_DIR = "/etc/grafana/dashboards"
FOLDER = "Inferwatch"
FOLDER_UID = "inferwatch"


def datasources() -> dict[str, Any]:
    """provisioning/datasources/inferwatch.yml"""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "type": "prometheus",
                "uid": PROMETHEUS_UID,
                "access": "proxy",
                "url": PROMETHEUS_URL,
                "isDefault": True,
                "editable": False,
                "jsonData": {
                    "httpMethod": "POST",
                    "timeInterval": SCRAPE_INTERVAL,
                    "exemplarTraceIdDestinations": [
                        {
                            "name": TRACE_ID_LABEL,
                            "datasourceUid": JAEGER_UID,
                            "urlDisplayLabel": "Trace in Jaeger",
                        }
                    ],
                },
            },
            {
                "name": "Jaeger",
                "type": "jaeger",
                "uid": JAEGER_UID,
                "access": "proxy",
                "url": JAEGER_URL,
                "editable": False,
            },
            {
                "name": "Alertmanager",
                "type": "alertmanager",
                "uid": ALERTMANAGER_UID,
                "access": "proxy",
                "url": ALERTMANAGER_URL,
                "editable": False,
                # Prometheus' Alertmanager, not Grafana's own; Grafana sends it no alerts.
                "jsonData": {"implementation": "prometheus", "handleGrafanaManagedAlerts": False},
            },
        ],
    }


def dashboard_provider() -> dict[str, Any]:
    """provisioning/dashboards/inferwatch.yml: the generated JSON files, read-only in Grafana
    (a change is made in dashboards/ and regenerated, never saved in the UI)."""
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "inferwatch",
                "orgId": 1,
                "folder": FOLDER,
                "folderUid": FOLDER_UID,
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": DASHBOARDS_DIR, "foldersFromFilesStructure": False},
            }
        ],
    }


def jaeger_search_link() -> dict[str, Any]:
    """A data link to Explore on the Jaeger datasource: the service's traces in the time range
    of the panel, for the slow request an exemplar did not catch."""
    pane = {
        "datasource": JAEGER_UID,
        "queries": [
            {
                "refId": "A",
                "datasource": {"type": "jaeger", "uid": JAEGER_UID},
                "queryType": "search",
                "service": TRACED_SERVICE,
            }
        ],
        "range": {"from": "${__from}", "to": "${__to}"},
    }
    panes = json.dumps({"traces": pane}, separators=(",", ":"), sort_keys=True)
    return {
        "title": "Traces in Jaeger (this time range)",
        "url": f"/explore?schemaVersion=1&orgId=1&panes={panes}",
        "targetBlank": True,
    }
