"""What every inferwatch dashboard has around its panels (the monitoring-mixin conventions): a
datasource variable, chained multi-select variables for job, instance, model and priority, UTC,
a stable uid, and a dropdown of the four dashboards that keeps the variables and the time."""

from __future__ import annotations

from collections.abc import Sequence

from grafanalib import core as g

from alerts.dashboard_links import Dashboard
from dashboards.grafana import PROMETHEUS, SCHEMA_VERSION, Row, layout
from dashboards.series import COLLECT_ERRORS, REQUESTS, VARIABLES

TAG = "inferwatch"
# Each variable's values, filtered by the variables before it. job and instance come from a
# family every inferwatch target exports (the service and the standalone exporter alike).
VARIABLE_SOURCE = {
    "job": COLLECT_ERRORS,
    "instance": COLLECT_ERRORS,
    "model": REQUESTS,
    "priority": REQUESTS,
}


def _query_variable(name: str) -> g.Template:
    before = VARIABLES[: VARIABLES.index(name)]
    matchers = ", ".join(f'{label}=~"${label}"' for label in before)
    source = VARIABLE_SOURCE[name]
    selector = f"{source}{{{matchers}}}" if matchers else source
    variable = g.Template(
        name=name,
        label=name,
        query=f"label_values({selector}, {name})",
        dataSource=PROMETHEUS,
        includeAll=True,
        multi=True,
        refresh=g.REFRESH_ON_TIME_RANGE_CHANGE,
        sort=g.SORT_ALPHA_ASC,
        # "All" of job lists the inferwatch jobs; deeper down, ".*" also matches series that
        # lack the label (a GPU has no model).
        allValue=None if name == "job" else ".*",
    )
    variable._current = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return variable


def variables() -> list[g.Template]:
    datasource = g.Template(
        name="datasource",
        label="Data source",
        query="prometheus",
        type="datasource",
        default="Prometheus",
        hide=g.SHOW,
    )
    return [datasource, *(_query_variable(name) for name in VARIABLES)]


def board(meta: Dashboard, description: str, rows: Sequence[Row]) -> g.Dashboard:
    return g.Dashboard(
        title=meta.title,
        uid=meta.uid,
        description=description,
        tags=[TAG],
        timezone=g.UTC,
        time=g.Time("now-1h", "now"),
        refresh="30s",
        schemaVersion=SCHEMA_VERSION,
        graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
        editable=False,
        templating=g.Templating(list=variables()),
        links=[
            g.DashboardLink(
                title="Inferwatch dashboards",
                type="dashboards",
                tags=[TAG],
                asDropdown=True,
                includeVars=True,
                keepTime=True,
            )
        ],
        panels=layout(meta, rows),
    )
