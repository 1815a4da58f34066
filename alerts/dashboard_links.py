"""Where each alert is drawn in Grafana: its dashboard's uid and the id of its panel.

Pure data, like the spec. The dashboards code (dashboards/) gives these panels exactly these
ids, so an alert's link keeps pointing at the same panel when panels are added around it; other
panels are numbered from 100 up. `dashboard_url` turns an alert name into the link an
annotation or a runbook section carries. tests/dashboards checks that every alert the spec
renders has an entry here and that its entry lands on a real panel showing what the alert reads;
an entry may name an alert the spec is about to gain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str

    @property
    def slug(self) -> str:
        """The URL slug Grafana makes of the title ("&" reads "and")."""
        text = self.title.lower().replace("&", " and ")
        return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


@dataclass(frozen=True)
class PanelLink:
    dashboard: Dashboard
    panel_id: int  # below 100: the range kept for linked panels


OVERVIEW = Dashboard("inferwatch-overview", "Inferwatch / Overview")
ENGINE = Dashboard("inferwatch-engine", "Inferwatch / Engine & KV cache")
GPU_HOST = Dashboard("inferwatch-gpu-host", "Inferwatch / GPU & host")
ALERTS = Dashboard("inferwatch-alerts", "Inferwatch / Alerts & degradation")
DASHBOARDS = (OVERVIEW, ENGINE, GPU_HOST, ALERTS)

# Overview
TARGETS_DOWN = PanelLink(OVERVIEW, 1)
BUDGET_BURN = PanelLink(OVERVIEW, 2)
FAILED_RATIO = PanelLink(OVERVIEW, 3)
LATENCY_GUARD = PanelLink(OVERVIEW, 4)  # the latency panel (by priority) a latency guard reads
REFUSALS = PanelLink(OVERVIEW, 5)
# Engine & KV cache
RUNNING_AND_WAITING = PanelLink(ENGINE, 1)
KV_USAGE = PanelLink(ENGINE, 2)
# GPU & host
GPU_UP = PanelLink(GPU_HOST, 1)
GPU_UTILIZATION = PanelLink(GPU_HOST, 2)
MEMORY_USED = PanelLink(GPU_HOST, 3)
HOST_CPU = PanelLink(GPU_HOST, 4)
# Alerts & degradation
FIRING = PanelLink(ALERTS, 1)
DEGRADATION_LEVEL = PanelLink(ALERTS, 2)

# Each baseline alert links to its signal drawn with its baseline and the breach band.
BASELINE_PANELS: dict[str, PanelLink] = {
    "InferwatchTimeToFirstTokenAboveBaseline": PanelLink(ALERTS, 10),
    "InferwatchRequestLatencyAboveBaseline": PanelLink(ALERTS, 11),
    "InferwatchErrorRatioAboveBaseline": PanelLink(ALERTS, 12),
    "InferwatchQueueDepthAboveBaseline": PanelLink(ALERTS, 13),
    "InferwatchQueueWaitAboveBaseline": PanelLink(ALERTS, 14),
    "InferwatchInterTokenLatencyAboveBaseline": PanelLink(ALERTS, 15),
}

ALERT_PANELS: dict[str, PanelLink] = {
    **BASELINE_PANELS,
    "InferwatchErrorBudgetBurn": BUDGET_BURN,
    "InferwatchGPUSaturated": GPU_UTILIZATION,
    "InferwatchKVCacheSaturated": KV_USAGE,
    "InferwatchQueueDepthHigh": RUNNING_AND_WAITING,
    "InferwatchRequestLatencyHigh": LATENCY_GUARD,
    "InferwatchRefusalRatioHigh": REFUSALS,
    "InferwatchErrorRatioHigh": FAILED_RATIO,
    "InferwatchHostCPUHigh": HOST_CPU,
    "InferwatchResourceUsageHigh": MEMORY_USED,
    "InferwatchServiceDown": TARGETS_DOWN,
    "InferwatchGPUDown": GPU_UP,
    "InferwatchDegradationActive": DEGRADATION_LEVEL,
    "InferwatchWatchdog": FIRING,
}


def panel_url(link: PanelLink, grafana_url: str) -> str:
    """`<grafana_url>/d/<uid>/<slug>?viewPanel=<id>`: the panel, alone on the screen."""
    board = link.dashboard
    return f"{grafana_url.rstrip('/')}/d/{board.uid}/{board.slug}?viewPanel={link.panel_id}"


def dashboard_url(alert_name: str, grafana_url: str) -> str:
    """The alert's panel; KeyError for an alert without an entry."""
    try:
        link = ALERT_PANELS[alert_name]
    except KeyError:
        raise KeyError(f"{alert_name} has no panel in alerts/dashboard_links.py") from None
    return panel_url(link, grafana_url)


def rendered_url(alert_name: str, grafana_url: str) -> str:
    """What the generated files link: the alert's panel or, for an alert the spec just gained
    (no entry yet, which tests/dashboards fails on), the firing-alerts panel, so that adding a
    signal stays a one-place change that renders every file."""
    return panel_url(ALERT_PANELS.get(alert_name, FIRING), grafana_url)
