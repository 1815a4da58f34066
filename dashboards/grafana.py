"""A thin adapter over grafanalib 0.7.1 for what it lacks, and the layout every dashboard shares.

grafanalib writes the dashboard model; this module adds what 0.7.1 does not know: Prometheus
targets with exemplars and a datasource variable, field-config units, thresholds and data links
on the current panel types (timeseries, stat, state timeline), a grid layout, and panel ids that
stay put (ids an alert links to come from alerts/dashboard_links.py; the others are numbered
from 100 in layout order, so they never collide with a linked one).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import attr
from grafanalib import core as g
from grafanalib._gen import DashboardEncoder

from alerts.dashboard_links import Dashboard, PanelLink
from dashboards.datasources import jaeger_search_link

PROMETHEUS = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39  # Grafana 11: timeseries/stat field config as written here
FIRST_FREE_ID = 100  # ids below are reserved for the panels alerts link to
WIDTH = 24


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    exemplar: bool = False  # ask Prometheus for the exemplars (trace ids) of this query
    instant: bool = False


@dataclass(frozen=True)
class Step:
    """A threshold step: from `value` up, `color` (the base step has value None)."""

    color: str
    value: float | None = None


OK = (Step("green"),)  # no threshold: one base colour


def above(value: float) -> tuple[Step, ...]:
    """Red from an alert's threshold up."""
    return (Step("green"), Step("red", value))


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"  # timeseries | stat | state
    description: str = ""
    steps: tuple[Step, ...] = OK
    link: PanelLink | None = None  # the alert link that fixes this panel's id
    latency: bool = False  # adds the Jaeger link; its raw-histogram queries carry exemplars
    width: int = 12
    height: int = 8
    stack: bool = False
    bars: bool = False
    dashed: tuple[str, ...] = ()  # refIds drawn as dashed lines (baselines, bands, limits)
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@attr.s
class PromTarget(g.Target):
    """grafanalib's Target plus what Prometheus targets have had since Grafana 7.4."""

    exemplar: bool = attr.ib(default=False)

    def to_json_data(self) -> dict[str, Any]:
        return {
            "datasource": PROMETHEUS,
            "editorMode": "code",
            "expr": self.expr,
            "exemplar": self.exemplar,
            "format": self.format,
            "instant": self.instant,
            "legendFormat": self.legendFormat,
            "range": not self.instant,
            "refId": self.refId,
        }


def _targets(queries: Sequence[Query]) -> list[PromTarget]:
    return [
        PromTarget(
            expr=q.expr,
            legendFormat=q.legend,
            refId=chr(ord("A") + i),
            instant=q.instant,
            exemplar=q.exemplar,
        )
        for i, q in enumerate(queries)
    ]


def _defaults(panel: Panel) -> dict[str, Any]:
    """fieldConfig.defaults that grafanalib 0.7.1 leaves out or writes in an old shape."""
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": s.color, "value": s.value} for s in panel.steps],
        },
        "links": [jaeger_search_link()] if panel.latency else [],
    }
    if panel.minimum is not None:
        defaults["min"] = panel.minimum
    if panel.maximum is not None:
        defaults["max"] = panel.maximum
    return defaults


def _dashed(ref_id: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byFrameRefID", "options": ref_id},
        "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}],
    }


def _build(panel: Panel, panel_id: int, pos: g.GridPos) -> g.Panel:
    common: dict[str, Any] = {
        "title": panel.title,
        "description": panel.description or None,
        "dataSource": PROMETHEUS,
        "targets": _targets(panel.queries),
        "gridPos": pos,
        "id": panel_id,
        "maxDataPoints": None,
        "extraJson": {"fieldConfig": {"defaults": _defaults(panel)}},
    }
    if panel.kind == "stat":
        # Without a threshold a value has no colour: green would read as "fine".
        color = "value" if len(panel.steps) > 1 else "none"
        return g.Stat(format=panel.unit, reduceCalc="lastNotNull", colorMode=color, **common)
    if panel.kind == "state":
        return g.StateTimeline(colorMode="palette-classic", showValue="never", **common)
    threshold_line = "line" if len(panel.steps) > 1 else "off"
    return g.TimeSeries(
        unit=panel.unit,
        legendDisplayMode="table",
        legendPlacement="bottom",
        legendCalcs=["lastNotNull", "max"],
        tooltipMode="multi",
        tooltipSort="desc",
        lineInterpolation="stepAfter" if panel.bars else "linear",
        drawStyle="bars" if panel.bars else "line",
        fillOpacity=40 if panel.stack or panel.bars else 10,
        stacking={"mode": "normal", "group": "A"} if panel.stack else {},
        thresholdsStyleMode=threshold_line,
        showPoints="never",
        overrides=[_dashed(ref) for ref in panel.dashed],
        **common,
    )


@dataclass
class _Grid:
    """Flows panels left to right in rows of 24 columns."""

    y: int = 0
    x: int = 0
    line_height: int = 0
    ids: set[int] = field(default_factory=set)
    next_id: int = FIRST_FREE_ID

    def place(self, width: int, height: int) -> g.GridPos:
        if self.x + width > WIDTH:
            self.newline()
        pos = g.GridPos(h=height, w=width, x=self.x, y=self.y)
        self.x += width
        self.line_height = max(self.line_height, height)
        return pos

    def newline(self) -> None:
        self.y += self.line_height
        self.x, self.line_height = 0, 0

    def panel_id(self, link: PanelLink | None, dashboard: Dashboard) -> int:
        if link is not None:
            if link.dashboard != dashboard:
                raise ValueError(f"{link} belongs to {link.dashboard.uid}, not {dashboard.uid}")
            wanted = link.panel_id
        else:
            while self.next_id in self.ids:
                self.next_id += 1
            wanted = self.next_id
        if wanted in self.ids:
            raise ValueError(f"panel id {wanted} used twice in {dashboard.uid}")
        self.ids.add(wanted)
        return wanted


def layout(dashboard: Dashboard, rows: Sequence[Row]) -> list[g.Panel]:
    """Row headers and their panels with positions and ids."""
    grid = _Grid()
    out: list[g.Panel] = []
    for row in rows:
        grid.newline()
        header = g.RowPanel(
            title=row.title,
            id=grid.panel_id(None, dashboard),
            gridPos=g.GridPos(h=1, w=WIDTH, x=0, y=grid.y),
        )
        out.append(header)
        grid.y += 1
        for panel in row.panels:
            pos = grid.place(panel.width, panel.height)
            out.append(_build(panel, grid.panel_id(panel.link, dashboard), pos))
    return out


def to_json(dashboard: g.Dashboard) -> str:
    """The dashboard model as Grafana imports it: sorted keys, so diffs stay small."""
    return (
        json.dumps(dashboard.to_json_data(), sort_keys=True, indent=2, cls=DashboardEncoder) + "\n"
    )
