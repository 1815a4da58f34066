"""What an incident picture shows, built from the alert spec (the same SLIs and recorded names
the rules use, never retyped PromQL): each baseline signal with its baseline and the breach
band, the alerts pending and firing, the degradation level, and refusals by priority."""

from __future__ import annotations

from dataclasses import dataclass, replace

from alerts.baseline import BaselineRule
from alerts.spec import SPEC, Spec


@dataclass(frozen=True)
class Line:
    query: str
    legend: str  # label names joined into the legend, e.g. "instance"
    role: str = "signal"  # signal | baseline | band


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    lines: tuple[Line, ...]
    kind: str = "lines"  # lines | alerts (state timeline) | steps


def panels(spec: Spec = SPEC, rate_window: float | None = None) -> list[Panel]:
    """`rate_window` (seconds) names the recorded series of rules rendered with another rate
    window than the spec's (a test's faster copy records `..._rate30s`, not `..._rate5m`)."""
    timing = spec.prometheus
    if rate_window is not None:
        timing = replace(timing, rate_window=rate_window)
    out: list[Panel] = []
    for signal in spec.baselines:
        rule = BaselineRule(spec, signal, timing)
        out.append(
            Panel(
                title=f"{signal.what} vs baseline",
                unit=signal.unit,
                lines=(
                    Line(rule.sli_record, "instance"),
                    Line(rule.baseline_record, "instance", "baseline"),
                    Line(f"{rule.baseline_record} * {spec.breach_factor}", "instance", "band"),
                ),
            )
        )
    out.append(
        Panel(
            title="Alerts (pending / firing)",
            unit="",
            lines=(Line('ALERTS{alertname=~"Inferwatch.*"}', "alertname,alertstate"),),
            kind="alerts",
        )
    )
    out.append(
        Panel(
            title="Degradation level",
            unit="level",
            lines=(Line("max by (instance) (inferwatch_degradation_level)", "instance"),),
            kind="steps",
        )
    )
    out.append(
        Panel(
            title="Refusals by priority",
            unit="req/s",
            lines=(
                Line(
                    "sum by (priority) (rate(inferwatch_request_rejections_total[1m]))",
                    "priority",
                ),
            ),
        )
    )
    return out
