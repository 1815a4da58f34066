"""Every alert the spec renders has a dashboard link (alerts/dashboard_links.py), the link lands
on a panel that shows what the alert watches, and `dashboard_url` spells Grafana's panel URL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from alerts.dashboard_links import ALERT_PANELS, DASHBOARDS, OVERVIEW, dashboard_url
from dashboards.generate import dashboards
from dashboards.grafana import FIRST_FREE_ID
from dashboards.promql import parse
from tests.dashboards.exported import alert_exprs, recorded_series
from tests.dashboards.lint import panels
from tests.support.metric_refs import family


@pytest.fixture(scope="module")
def panel_by_link() -> dict[tuple[str, int], dict[str, Any]]:
    boards = [json.loads(text) for text in dashboards().values()]
    return {(b["uid"], p["id"]): p for b in boards for p in panels(b)}


def _families(exprs: list[str]) -> set[str]:
    """The raw families (and Prometheus' ALERTS) some expressions read, through recorded series."""
    recorded = recorded_series()
    out: set[str] = set()
    for expr in exprs:
        for selector in parse(expr).selectors:
            found = recorded.get(selector.name)
            out |= set(found.sources) if found else {family(selector.name)}
    return out


def test_every_alert_of_the_spec_has_a_link() -> None:
    alerts = set(alert_exprs())
    assert len(alerts) > 10
    assert alerts - set(ALERT_PANELS) == set(), "add these to alerts/dashboard_links.py"


def test_linked_panels_keep_ids_below_the_automatic_range() -> None:
    assert all(0 < link.panel_id < FIRST_FREE_ID for link in ALERT_PANELS.values())
    assert {link.dashboard for link in ALERT_PANELS.values()} == set(DASHBOARDS)


@pytest.mark.parametrize("alert", sorted(alert_exprs()))
def test_the_link_shows_what_the_alert_watches(
    alert: str, panel_by_link: dict[tuple[str, int], dict[str, Any]]
) -> None:
    link = ALERT_PANELS.get(alert)
    assert link is not None, f"{alert} has no entry in alerts/dashboard_links.py"
    panel = panel_by_link.get((link.dashboard.uid, link.panel_id))
    assert panel is not None, f"{alert}: no panel {link.panel_id} on {link.dashboard.uid}"
    watched = _families(alert_exprs()[alert])
    shown = _families([t["expr"] for t in panel["targets"]])
    if not watched:  # the Watchdog reads no metric: its panel shows it firing
        watched = {"ALERTS"}
    assert watched & shown, f"{alert} reads {watched}; {panel['title']} shows {shown}"


def test_dashboard_url_is_grafanas_view_panel_link() -> None:
    url = dashboard_url("InferwatchServiceDown", "https://grafana.example.org/")
    assert url == (
        "https://grafana.example.org/d/inferwatch-overview/inferwatch-overview?viewPanel=1"
    )
    engine = dashboard_url("InferwatchKVCacheSaturated", "http://127.0.0.1:3000")
    assert engine == (
        "http://127.0.0.1:3000/d/inferwatch-engine/inferwatch-engine-and-kv-cache?viewPanel=2"
    )
    assert OVERVIEW.slug == "inferwatch-overview"
    with pytest.raises(KeyError, match="dashboard_links"):
        dashboard_url("InferwatchNoSuchAlert", "https://grafana.example.org")
