"""The generated dashboards pass the linter (tests/dashboards/lint.py), and every rule is shown
failing on a copy of a dashboard broken in one place, reported by that rule alone.

What the code exports comes from the real app, engine, host collector and GPU collector over the
FAKE two-GPU NVML (tests/dashboards/exported.py); what is recorded, from the generated rules.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from alerts.dashboard_links import FAILED_RATIO, PanelLink
from alerts.values import load_grafana_url
from dashboards.datasources import JAEGER_UID
from dashboards.generate import dashboards
from dashboards.signals import Signals
from tests.dashboards.exported import Series, alert_dashboard_urls, alert_exprs, all_series
from tests.dashboards.lint import RULES, Board, Facts, lint, panels

Mutation = Callable[[list[Board]], None]
SPEC_ALERTS = set(alert_exprs())


@pytest.fixture(scope="module")
def series() -> dict[str, Series]:
    return all_series()


@pytest.fixture(scope="module")
def facts(series: dict[str, Series]) -> Facts:
    return Facts(
        series=series,
        alert_values=Signals().alert_values(),
        alert_urls=alert_dashboard_urls(),
        grafana_url=load_grafana_url(),
        jaeger_uid=JAEGER_UID,
    )


@pytest.fixture(scope="module")
def boards() -> list[Board]:
    return [json.loads(text) for text in dashboards().values()]


def test_the_generated_dashboards_pass_every_rule(boards: list[Board], facts: Facts) -> None:
    findings = lint(boards, facts)
    assert [str(f) for f in findings] == []


def test_the_exposition_is_complete_enough_to_judge(series: dict[str, Series]) -> None:
    """The facts are real: counters, histograms with exemplars, recorded series, GPUs."""
    assert series["inferwatch_requests_total"].type == "counter"
    assert series["inferwatch_time_to_first_token_seconds"].exemplars
    assert not series["inferwatch_engine_step_duration_seconds"].exemplars
    assert "priority" in series["inferwatch_queue_depth"].labels
    assert "inferwatch_gpu_xid_errors_total" in series
    traffic = series["model:inferwatch_requests:rate5m"]
    assert traffic.type == "recorded" and traffic.sources == {"inferwatch_requests_total"}
    ttft = series["model:inferwatch_time_to_first_token_seconds:p95_rate5m_baseline"]
    assert "inferwatch_time_to_first_token_seconds" in ttft.sources
    assert "instance" not in series["model:inferwatch_requests:unavailable_ratio_rate5m"].labels


def test_every_panel_of_every_dashboard_was_looked_at(boards: list[Board]) -> None:
    counts = {b["uid"]: sum(1 for _ in panels(b)) for b in boards}
    assert all(count >= 8 for count in counts.values()), counts


# -- each rule can fail -----------------------------------------------------------------------


def _panel(boards: list[Board], which: str | PanelLink) -> dict[str, Any]:
    """A panel by title, or (a title the spec writes) by the alert link that fixes its id."""
    found = [
        p
        for b in boards
        for p in panels(b)
        if (p["title"] == which if isinstance(which, str) else
            (b["uid"], p["id"]) == (which.dashboard.uid, which.panel_id))
    ]  # fmt: skip
    assert len(found) == 1, f"no single panel {which!r}"
    return found[0]


def _board(boards: list[Board], uid: str) -> Board:
    return next(b for b in boards if b["uid"] == uid)


def _edit_expr(which: str | PanelLink, old: str, new: str) -> Mutation:
    def mutate(boards: list[Board]) -> None:
        target = _panel(boards, which)["targets"][0]
        assert old in target["expr"], target["expr"]
        target["expr"] = target["expr"].replace(old, new, 1)

    return mutate


def _set(title: str, change: Callable[[dict[str, Any]], None]) -> Mutation:
    return lambda boards: change(_panel(boards, title))


def _set_board(uid: str, change: Callable[[Board], None]) -> Mutation:
    return lambda boards: change(_board(boards, uid))


def _defaults(panel: dict[str, Any]) -> dict[str, Any]:
    return panel["fieldConfig"]["defaults"]


def _variable(board: Board, name: str) -> dict[str, Any]:
    return next(v for v in board["templating"]["list"] if v["name"] == name)


def _duplicate_panel_id(boards: list[Board]) -> None:
    rows = [p for p in _board(boards, "inferwatch-engine")["panels"] if p["type"] != "row"]
    unlinked = [p for p in rows if p["id"] >= 100]
    unlinked[1]["id"] = unlinked[0]["id"]


def _move_linked_panel(boards: list[Board]) -> None:
    _panel(boards, "KV cache usage")["id"] = 99


def _retitle(boards: list[Board]) -> None:
    """Grafana's URL slug follows the title: the alerts' links to this board would 404."""
    _board(boards, "inferwatch-gpu-host")["title"] = "Inferwatch / GPUs"


def _drop_variable(boards: list[Board]) -> None:
    """The links set var-model; a board without that variable would ignore it silently."""
    board = _board(boards, "inferwatch-engine")
    board["templating"]["list"] = [v for v in board["templating"]["list"] if v["name"] != "model"]


def _no_dropdown(boards: list[Board]) -> None:
    _board(boards, "inferwatch-gpu-host")["links"][0]["includeVars"] = False


BROKEN: dict[str, tuple[set[str], Mutation]] = {
    "unparsable query": ({"parses"}, _edit_expr("Queue wait", "(rate(", "((rate(")),
    "renamed metric": (
        {"metric-exists"},
        _edit_expr(
            "Requests/s by priority and outcome",
            "inferwatch_requests_total",
            "inferwatch_request_total",
        ),
    ),  # fmt: skip
    "unknown recorded series": (
        {"metric-exists"},
        _edit_expr(FAILED_RATIO, "error_ratio_rate5m", "error_ratio_rate1m"),
    ),
    "counter without rate": (
        {"counter-in-rate"},
        _edit_expr(
            "Preemptions by priority",
            "rate(inferwatch_preemptions_total",
            "(inferwatch_preemptions_total",
        ),
    ),  # fmt: skip
    "fixed range": ({"rate-interval"}, _edit_expr("Queue wait", "$__rate_interval", "5m")),
    "no unit": ({"unit"}, _set("Host memory", lambda p: _defaults(p).update(unit=""))),
    "fixed datasource": (
        {"datasource"},
        _set("Power", lambda p: p["targets"][0].update(datasource={"uid": "prom-1"})),
    ),
    "no job matcher": (
        {"matchers"},
        _edit_expr("Temperature", 'job=~"$job", ', ""),
    ),
    "no priority matcher": (
        {"matchers"},
        _edit_expr("Oldest wait by priority", ', priority=~"$priority"', ""),
    ),
    "priority summed away": (
        {"priority-grouping"},
        _edit_expr("Requests/s by priority and outcome", "by (priority, outcome)", "by (outcome)"),
    ),
    "no exemplars": (
        {"exemplars"},
        _set("Time to first token", lambda p: [t.update(exemplar=False) for t in p["targets"]]),
    ),
    "no Jaeger link": (
        {"jaeger-link"},
        _set("End-to-end latency", lambda p: _defaults(p).update(links=[])),
    ),
    "made-up threshold": (
        {"thresholds"},
        _set(
            "GPU utilisation", lambda p: _defaults(p)["thresholds"]["steps"][1].update(value=0.42)
        ),
    ),
    "variable not chained": (
        {"variables"},
        _set_board(
            "inferwatch-overview",
            lambda b: _variable(b, "model").update(
                query="label_values(inferwatch_requests_total, model)"
            ),
        ),
    ),  # fmt: skip
    "single-select variable": (
        {"variables"},
        _set_board("inferwatch-alerts", lambda b: _variable(b, "priority").update(multi=False)),
    ),
    "browser timezone": (
        {"timezone"},
        _set_board("inferwatch-engine", lambda b: b.update(timezone="browser")),
    ),
    "dropdown drops the variables": ({"links"}, _no_dropdown),
    "duplicate panel id": ({"unique-ids"}, _duplicate_panel_id),
    "duplicate uid": (
        {"unique-ids", "alert-links"},
        _set_board("inferwatch-engine", lambda b: b.update(uid="inferwatch-overview")),
    ),
    "linked panel renumbered": ({"alert-links"}, _move_linked_panel),
    "linked dashboard retitled": ({"alert-links"}, _retitle),
    "linked dashboard loses a variable": ({"alert-links", "variables"}, _drop_variable),
}


def test_every_alert_of_the_spec_carries_links_the_linter_reads() -> None:
    """The facts are the committed dashboard_url annotations and runbook links, all of them."""
    urls = alert_dashboard_urls()
    assert set(urls) == SPEC_ALERTS
    assert all(len(found) >= 2 and "" not in found for found in urls.values()), urls


def test_every_rule_has_a_broken_dashboard() -> None:
    assert set().union(*(rules for rules, _ in BROKEN.values())) == set(RULES)


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_dashboard_is_caught_by_its_rule(
    case: str, boards: list[Board], facts: Facts
) -> None:
    """What the broken copy adds to the findings of the intact dashboards (none, when those
    pass) is reported by the expected rule alone."""
    expected, mutate = BROKEN[case]
    broken = copy.deepcopy(boards)
    mutate(broken)
    before = set(lint(boards, facts))
    added = [f for f in lint(broken, facts) if f not in before]
    assert added, f"{case}: nothing reported"
    assert {f.rule for f in added} == expected, [str(f) for f in added]
