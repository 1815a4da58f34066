"""Render alerts/generated/runbooks.md: one section per alert, with its rule facts from the spec.

The heading of each section is the alert name, so GitHub's anchor is the lower-cased name and
every `runbook_url` (values.yml's base + lower-cased name) lands on it. The prose comes from
runbook_entries.py; an alert without an entry still gets its section (facts, and a note that the
prose is missing), so a new signal never breaks `inferwatch generate`.
"""

from __future__ import annotations

from alerts.annotations import DEFAULT_GRAFANA_URL
from alerts.baseline import BaselineRule
from alerts.dashboard_links import ALERT_PANELS, FIRING, rendered_url
from alerts.detection_delays import measured_delays
from alerts.exposition import SCRAPE_INTERVAL_S
from alerts.promql_text import duration, number
from alerts.rules import BURN_ALERT
from alerts.spec_types import Spec

DETECTION_DELAY = """\
### Detection delays

A baseline alert fires once its SLI has been above {factor}x for {consecutive} evaluations in a
row (`for: {for_}` at a {interval} interval), but first the SLI has to get there: a {window} rate
window mixes old and new requests, and with realistic spreads a 2x step needs more than one
scrape of new requests to lift a p95 above {factor}x. Measured by replaying a realistic step
(log-normal latencies over the service's own buckets, whole-number counts, {scrape} scrapes;
see alerts/realistic.py) through the rules, and proven by promtool in
`alerts/generated/tests/detection_delays.test.yml` (not firing one evaluation before, firing at
the delay):

| alert | step | above {factor}x after | fires after | step between two evaluations: fires after |
|---|---|---|---|---|
{rows}

Count on the last column plus one interval as the worst case. The in-process evaluator runs
the same rule every {ip_interval} over {ip_window} windows, so it reacts within seconds. A new
pod of a bad rollout has no baseline of its own; it is compared with its fleet's and fires about
as fast as a step (its SLI holds only new requests).
"""


NO_ENTRY = (
    "No runbook entry yet: add one for this alert to alerts/runbook_entries.py. The rule "
    "facts below are generated from the spec."
)


def _facts(spec: Spec) -> dict[str, list[str]]:
    """Per alert name: the rule facts a responder needs next to the prose."""
    timing = spec.prometheus
    window = duration(timing.rate_window)
    facts: dict[str, list[str]] = {}
    for signal in spec.baselines:
        rule = BaselineRule(spec, signal, timing)
        sli = signal.sli
        events = ""
        if sli.events_gate == "sli" and signal.min_events:
            events = f" and {signal.min_events} observations"
        elif sli.events_gate == "alert" and signal.min_events:
            events = f"; it alerts only with {signal.min_events} bad events in the window"
        facts[signal.alert] = [
            f"SLI: `{rule.sli_record}` = `{sli.promql(window)}`, only where the window holds "
            f"{spec.min_requests} served requests (`{spec.traffic.record_name(window)}` >= "
            f"{number(rule.min_rate)} req/s){events}.",
            f"Baselines: `{rule.baseline_record}`, the median of the SLI over "
            f"{duration(timing.baseline_window)} ending {duration(timing.baseline_offset)} ago "
            f"(lagged, so the anomaly does not raise its own bar), floored at "
            f"{number(signal.floor)}{signal.unit}, and only once "
            f"{timing.min_baseline_samples} samples exist; `{rule.fleet_baseline_record}`, the "
            f"same over the SLI of every replica of the job and model pooled "
            f"(`{rule.fleet_record}`).",
            f"Fires when the SLI is above {number(spec.breach_factor)}x its own baseline "
            f"(`basis: baseline`) or its fleet's (`basis: fleet`: a new pod of a bad rollout, "
            f"or one replica worse than the others) for {spec.consecutive} evaluations; while "
            f"neither baseline exists (`basis: cold_start`), when it is above "
            f"{number(signal.cold_start_threshold)}{signal.unit}. Severity warning, "
            f"`action: {signal.action.value}`.",
        ]
    for guard in spec.guards:
        labels = ", ".join(f"`{k}: {v}`" for k, v in guard.labels)
        facts.setdefault(guard.name, []).append(
            f"`{guard.expr}` for {duration(guard.for_s) if guard.for_s else '0s'}, severity "
            f"{guard.severity.value}{', ' + labels if labels else ''}."
        )
    burn = facts.setdefault(BURN_ALERT, [])
    for slo in spec.slos:
        burn.append(
            f"SLO `{slo.name}`: objective {number(slo.objective)}, bad events = {slo.what}."
        )
    for window in spec.burn_windows:
        burn.append(
            f"{number(window.burn_rate)}x over {duration(window.long_s)} and "
            f"{duration(window.short_s)}: severity {window.severity.value}."
        )
    burn.append(
        f"Every window pair needs {spec.min_bad_events} bad events in its long window: nobody is "
        "paged for two failed requests at night, whatever their share."
    )
    return facts


def _dashboard(alert: str, grafana_url: str) -> str:
    """The panel the alert's `dashboard_url` opens (without its labels: pick them there)."""
    link = ALERT_PANELS.get(alert, FIRING)
    url = rendered_url(alert, grafana_url)
    return f"[{link.dashboard.title}, panel {link.panel_id}]({url}) (the alert's `dashboard_url`)."


def render_runbooks(spec: Spec, grafana_url: str = DEFAULT_GRAFANA_URL) -> str:
    timing = spec.prometheus
    facts = _facts(spec)
    lines = [
        "<!-- Generated by `inferwatch generate` from alerts/spec.py. Do not edit. -->",
        "# inferwatch runbooks",
        "",
        "One section per alert. Baseline alerts are warnings with an `action` label for the "
        "degradation controller; pages come only from SLO burn rates and hard failures "
        "(severity critical). Actions: `shed_low_priority` (reject batch, then standard), "
        "`cap_tokens` (cap max_tokens before rejecting anyone), `tighten_concurrency` (lower "
        "the in-flight limit). Routing: critical -> pager, warning -> tickets, any `action` -> "
        "the service webhook as well, Watchdog -> dead-man's switch and the service webhook.",
        "",
        DETECTION_DELAY.format(
            consecutive=spec.consecutive,
            factor=number(spec.breach_factor),
            for_=duration(spec.for_s(timing)),
            interval=duration(timing.interval),
            window=duration(timing.rate_window),
            scrape=duration(SCRAPE_INTERVAL_S),
            rows="\n".join(
                f"| `{d.alert}` | {d.step} | {duration(d.on_evaluation[0])} | "
                f"{duration(d.on_evaluation[1])} | {duration(d.between[1])} |"
                for d in measured_delays(spec)
            ),
            ip_interval=duration(spec.in_process.interval),
            ip_window=duration(spec.in_process.rate_window),
        ),
    ]
    stale = sorted(spec.runbooks.keys() - facts.keys())
    if stale:
        raise ValueError(f"runbook entries for alerts the spec does not have: {stale}")
    # Written entries in their own order, then the alerts still waiting for one.
    for name in [*spec.runbooks, *(n for n in facts if n not in spec.runbooks)]:
        book = spec.runbooks.get(name)
        lines += [f"## {name}", "", f"**Meaning.** {book.meaning if book else NO_ENTRY}", ""]
        lines += [f"- {fact}" for fact in facts[name]]
        lines += ["", f"**Dashboard.** {_dashboard(name, grafana_url)}"]
        if book is not None:
            lines += ["", "**First checks.**", ""]
            lines += [f"{i}. {check}" for i, check in enumerate(book.first_checks, 1)]
            lines += ["", f"**Automation.** {book.automation}"]
        lines.append("")
    return "\n".join(lines)
