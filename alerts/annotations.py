"""The links every alert carries: its runbook section and the Grafana panel that shows its signal.

Both bases are deployment facts (alerts/values.yml: `runbook_url_base`, `grafana_url`); which
panel shows which alert is alerts/dashboard_links.py. The panel link keeps the alert's own
`job`, `instance`, `model` and `priority` as dashboard variables (Go templating, which
Prometheus renders per alert, each only where the alert has that label), so the on-call lands
on the replica and model that fired, not on "All".
"""

from __future__ import annotations

from dataclasses import dataclass

from alerts.dashboard_links import rendered_url

# The dashboards' variables (dashboards/series.py VARIABLES, checked by tests/dashboards).
DASHBOARD_VARIABLES = ("job", "instance", "model", "priority")
# What a caller that only reads expressions gets; the committed files take values.yml's.
DEFAULT_GRAFANA_URL = "http://127.0.0.1:3000"


@dataclass(frozen=True)
class Links:
    runbook_url_base: str
    grafana_url: str = DEFAULT_GRAFANA_URL


def as_links(links: Links | str) -> Links:
    """A bare string is a runbook base (what callers before the dashboard links passed)."""
    return links if isinstance(links, Links) else Links(links)


def runbook_url(base: str, alert: str) -> str:
    """`base` (values.yml's runbook_url_base) plus the runbook's anchor for the alert."""
    return f"{base}#{alert.lower()}"


def variables_template(labels: tuple[str, ...] = DASHBOARD_VARIABLES) -> str:
    """`&var-<label>=<value>` for each label the alert has, URL-escaped by Go's urlquery."""
    return "".join(
        f"{{{{ with $labels.{label} }}}}&var-{label}={{{{ . | urlquery }}}}{{{{ end }}}}"
        for label in labels
    )


def annotations(links: Links, alert: str, summary: str, description: str) -> dict[str, str]:
    return {
        "summary": summary,
        "description": description,
        "runbook_url": runbook_url(links.runbook_url_base, alert),
        "dashboard_url": rendered_url(alert, links.grafana_url) + variables_template(),
    }
