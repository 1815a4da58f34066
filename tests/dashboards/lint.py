"""A dashboard linter in the spirit of Grafana's dashboard-linter, plus what no linter can know
without the code: which metrics exist, which are counters, which carry which labels and
exemplars, and which panels the alerts link to.

Each rule is a function from (dashboards, facts) to findings, so a test can show it failing on
a dashboard broken on purpose and name the rule that caught it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from alerts.promtool_format import render_template
from dashboards.promql import Aggregation, Parsed, PromQLSyntaxError, Selector, parse
from tests.dashboards.exported import Series, sample_names
from tests.support.metric_refs import BUILTINS, expr_metrics, family, recording_refs

Board = dict[str, Any]
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE_INTERVAL = "$__rate_interval"
RATE_FUNCTIONS = frozenset({"rate", "increase"})
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.*),\s*(?P<label>[A-Za-z_]\w*)\s*\)$")


@dataclass(frozen=True)
class Facts:
    series: Mapping[str, Series]  # every series a query may read (exported, recorded, builtin)
    alert_values: frozenset[float]  # the numbers the spec alerts on
    alert_urls: Mapping[str, frozenset[str]]  # alert name -> its dashboard_url templates
    grafana_url: str
    jaeger_uid: str
    variables: tuple[str, ...] = ("job", "instance", "model", "priority")


@dataclass(frozen=True)
class Finding:
    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.where}: {self.message}"


@dataclass(frozen=True)
class Target:
    board: Board
    panel: dict[str, Any]
    target: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.board['uid']} / {self.panel['title']} / {self.target.get('refId')}"

    @property
    def expr(self) -> str:
        return str(self.target.get("expr", ""))


def panels(board: Board) -> Iterator[dict[str, Any]]:
    """Every panel but row headers, the panels of collapsed rows included."""
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def targets(boards: Sequence[Board]) -> Iterator[Target]:
    for board in boards:
        for panel in panels(board):
            for target in panel.get("targets", []):
                yield Target(board, panel, target)


def query_variables(board: Board) -> list[dict[str, Any]]:
    return [v for v in board.get("templating", {}).get("list", []) if v.get("type") == "query"]


def _parsed(expr: str) -> Parsed | None:
    try:
        return parse(expr)
    except PromQLSyntaxError:
        return None


def _selectors(expr: str) -> tuple[Selector, ...]:
    parsed = _parsed(expr)
    return parsed.selectors if parsed else ()


def _aggregations(expr: str) -> tuple[Aggregation, ...]:
    parsed = _parsed(expr)
    return parsed.aggregations if parsed else ()


def _series(facts: Facts, name: str) -> Series | None:
    found = facts.series.get(name)
    if found is None and family(name) != name:
        histogram = facts.series.get(family(name))
        found = histogram if histogram is not None and histogram.type == "histogram" else None
    return found


def _defaults(panel: dict[str, Any]) -> dict[str, Any]:
    return panel.get("fieldConfig", {}).get("defaults", {})


# -- the rules ---------------------------------------------------------------------------------


def parses(boards: Sequence[Board], facts: Facts) -> Iterator[Finding]:
    for t in targets(boards):
        if not t.expr.strip():
            yield Finding("parses", t.where, "empty query")
        elif _parsed(t.expr) is None:
            yield Finding("parses", t.where, f"not PromQL: {t.expr}")


def metric_exists(boards: Sequence[Board], facts: Facts) -> Iterator[Finding]:
    """Every metric a query or a variable names is exported by the code, recorded by the
    generated rules, or made by Prometheus (read with tests/support/metric_refs' scanner)."""
    known = sample_names(facts.series) | BUILTINS
    queries = [(t.where, t.expr) for t in targets(boards)]
    for board in boards:
        for variable in query_variables(board):
            match = _LABEL_VALUES.match(str(variable.get("query", "")))
            selector = match.group("selector") if match else str(variable.get("query", ""))
            queries.append((f"{board['uid']} / ${variable['name']}", selector))
    for where, expr in queries:
        for name in sorted((expr_metrics(expr) | recording_refs(expr)) - known):
            yield Finding("metric-exists", where, f"{name} is neither exported nor recorded")


def counter_in_rate(boards: Sequence[Board], facts: Facts) -> Iterator[Finding]:
    """A counter (a histogram's buckets, count and sum too) is read only through rate() or
    increase(); its raw value is only a restart-sensitive total."""
    for t in targets(boards):
        for s in _selectors(t.expr):
            found = _series(facts, s.name)
            is_counter = found is not None and (
                found.type == "counter" or (found.type == "histogram" and s.name != family(s.name))
            )
            if is_counter and not (s.function in RATE_FUNCTIONS and s.range):
                yield Finding("counter-in-rate", t.where, f"{s.name} outside rate()/increase()")


def rate_interval(boards: Sequence[Board], facts: Facts) -> Iterator[Finding]:
    """A range over a raw series is `$__rate_interval` (Grafana keeps it >= 4 scrapes);
    recorded series have their windows built in."""
    for t in targets(boards):
        for s in _selectors(t.expr):
            found = _series(facts, s.name)
            raw = found is not None and found.type in ("counter", "gauge", "histogram")
            if raw and s.range is not None and s.range != RATE_INTERVAL:
                yield Finding("rate-interval", t.where, f"{s.name}[{s.range}]: use {RATE_INTERVAL}")


def unit(boards: Sequence[Board], facts: Facts) -> Iterator[Finding]:
    for board in boards:
        for panel in panels(board):
            if not _defaults(panel).get("unit"):
                yield Finding("unit", f"{board['uid']} / {panel['title']}", "no unit")


def datasource(boards: Sequence[Board], facts: Facts) -> Iterator[Finding]:
    """Panels, targets and variables use the datasource variable, never a fixed datasource."""
    for board in boards:
        variables = board.get("templating", {}).get("list", [])
        if not any(v.get("type") == "datasource" and v.get("name") == "datasource"
                   and v.get("query") == "prometheus" for v in variables):  # fmt: skip
            yield Finding("datasource", board["uid"], "no Prometheus datasource variable")
        for variable in query_variables(board):
            if variable.get("datasource") != DATASOURCE:
                yield Finding("datasource", f"{board['uid']} / ${variable['name']}", "fixed")
        for panel in panels(board):
            if panel.get("datasource") != DATASOURCE:
                yield Finding("datasource", f"{board['uid']} / {panel['title']}", "panel")
    for t in targets(boards):
        if t.target.get("datasource") != DATASOURCE:
            yield Finding("datasource", t.where, "target does not use ${datasource}")


def matchers(boards: Sequence[Board], facts: Facts) -> Iterator[Finding]:
    """Every selector matches each variable whose label its series carries (job and instance
    everywhere they exist; model and priority where the series has them)."""
    for t in targets(boards):
        for s in _selectors(t.expr):
            found = _series(facts, s.name)
            if found is None:
                continue
            for label in facts.variables:
                m = s.matcher(label)
                if label in found.labels and (
                    m is None or m.op != "=~" or f"${label}" not in m.value
                ):
                    yield Finding("matchers", t.where, f'{s.name} lacks {label}=~"${label}"')


def priority_grouping(boards: Sequence[Board], facts: Facts) -> Iterator[Finding]:
    """An aggregation over a per-priority series keeps `priority`: one line per class."""
    for t in targets(boards):
        for agg in _aggregations(t.expr):
            per_priority = [
                s.name for s in agg.selectors
                if (found := _series(facts, s.name)) is not None and "priority" in found.labels
            ]  # fmt: skip
            if not per_priority:
                continue
            kept = (agg.grouping == "by" and "priority" in agg.labels) or (
                agg.grouping == "without" and "priority" not in agg.labels
            )
            if not kept:
                yield Finding("priority-grouping", t.where, f"{agg.op} drops priority of "
                              f"{per_priority[0]}")  # fmt: skip


def _exemplar_families(facts: Facts) -> set[str]:
    return {name for name, s in facts.series.items() if s.exemplars}


def _reads(expr: str, facts: Facts) -> set[str]:
    """The raw families a query reads, through recorded series too."""
    out: set[str] = set()
    for s in _selectors(expr):
        found = _series(facts, s.name)
        if found is not None and found.type == "recorded":
            out |= found.sources
        else:
            out.add(family(s.name))
    return out


def latency_panels(boards: Sequence[Board], facts: Facts) -> Iterator[tuple[Board, dict]]:
    """Panels in seconds that show a latency histogram whose observations carry trace ids."""
    traced = _exemplar_families(facts)
    for board in boards:
        for panel in panels(board):
            reads = set().union(
                *(_reads(t.get("expr", ""), facts) for t in panel.get("targets", []))
            )
            if _defaults(panel).get("unit") == "s" and reads & traced:
                yield board, panel


def exemplars(boards: Sequence[Board], facts: Facts) -> Iterator[Finding]:
    """A latency time series asks for exemplars on the raw buckets (a recorded series has none),
    so a slow point links to its trace. A stat panel draws no points to hang one on."""
    traced = _exemplar_families(facts)
    for board, panel in latency_panels(boards, facts):
        if panel.get("type") != "timeseries":
            continue
        ok = any(
            t.get("exemplar") is True
            and any(
                s.name.endswith("_bucket") and family(s.name) in traced
                for s in _selectors(t.get("expr", ""))
            )
            for t in panel.get("targets", [])
        )
        if not ok:
            yield Finding("exemplars", f"{board['uid']} / {panel['title']}", "no exemplar query")


def jaeger_link(boards: Sequence[Board], facts: Facts) -> Iterator[Finding]:
    """Every latency panel links to the traces of its time range in the Jaeger datasource."""
    for board, panel in latency_panels(boards, facts):
        urls = [str(link.get("url", "")) for link in _defaults(panel).get("links", [])]
        if not any("/explore" in u and f'"uid":"{facts.jaeger_uid}"' in u for u in urls):
            yield Finding("jaeger-link", f"{board['uid']} / {panel['title']}", "no Jaeger link")


def thresholds(boards: Sequence[Board], facts: Facts) -> Iterator[Finding]:
    """A threshold is a number the spec alerts on (a guard's, a cold start's, a burn rate, an
    objective), never a colour someone liked."""
    for board in boards:
        for panel in panels(board):
            steps = _defaults(panel).get("thresholds", {}).get("steps", [])
            for step in steps:
                value = step.get("value")
                if value is not None and not any(
                    math.isclose(value, v) for v in facts.alert_values
                ):
                    where = f"{board['uid']} / {panel['title']}"
                    yield Finding("thresholds", where, f"{value} is no alert's threshold")


def variables(boards: Sequence[Board], facts: Facts) -> Iterator[Finding]:
    """job, instance, model, priority: multi-select with All, each query filtered by the
    variables before it (chained), and listing the label it is named for."""
    for board in boards:
        found = query_variables(board)
        names = tuple(v["name"] for v in found)
        if names != facts.variables:
            yield Finding("variables", board["uid"], f"variables {names}, not {facts.variables}")
            continue
        for i, variable in enumerate(found):
            where = f"{board['uid']} / ${variable['name']}"
            if not (variable.get("multi") and variable.get("includeAll")):
                yield Finding("variables", where, "not multi-select with All")
            match = _LABEL_VALUES.match(str(variable.get("query", "")))
            if match is None or match.group("label") != variable["name"]:
                yield Finding("variables", where, "not label_values(..., <its label>)")
                continue
            selectors = _selectors(match.group("selector"))
            for before in facts.variables[:i]:
                if not all((m := s.matcher(before)) and f"${before}" in m.value for s in selectors):
                    yield Finding("variables", where, f"not filtered by ${before}")


def timezone(boards: Sequence[Board], facts: Facts) -> Iterator[Finding]:
    for board in boards:
        if board.get("timezone") != "utc":
            yield Finding("timezone", board["uid"], f"timezone {board.get('timezone')!r}")


def links(boards: Sequence[Board], facts: Facts) -> Iterator[Finding]:
    """A dropdown of the dashboards (by a tag they all carry) that keeps variables and time."""
    for board in boards:
        dropdowns = [
            link for link in board.get("links", [])
            if link.get("type") == "dashboards" and link.get("asDropdown")
            and link.get("includeVars") and link.get("keepTime") and link.get("tags")
            and all(set(link["tags"]) <= set(other.get("tags", [])) for other in boards)
        ]  # fmt: skip
        if not dropdowns:
            yield Finding("links", board["uid"], "no dashboards dropdown keeping vars and time")


def unique_ids(boards: Sequence[Board], facts: Facts) -> Iterator[Finding]:
    seen: dict[str, int] = {}
    for board in boards:
        uid = board.get("uid")
        if not uid:
            yield Finding("unique-ids", board.get("title", "?"), "no uid")
        seen[uid] = seen.get(uid, 0) + 1
        ids = [p.get("id") for p in board.get("panels", [])]
        ids += [c.get("id") for p in board.get("panels", []) for c in p.get("panels", [])]
        for panel_id in sorted({i for i in ids if ids.count(i) > 1 or not isinstance(i, int)},
                               key=str):  # fmt: skip
            yield Finding("unique-ids", str(uid), f"panel id {panel_id!r} not unique")
    for uid, count in seen.items():
        if count > 1:
            yield Finding("unique-ids", str(uid), f"uid used by {count} dashboards")


_PANEL_PATH = re.compile(r"^/d/(?P<uid>[^/]+)/(?P<slug>[^/]+)$")


def _slug(title: str) -> str:
    """Grafana's URL slug of a dashboard title ("&" reads "and")."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower().replace("&", " and ")).strip("-")


def _link_problem(url: str, facts: Facts, by_uid: Mapping[Any, Board]) -> str | None:
    """Why a link (a Go template, rendered with every label present) misses its panel."""
    if not url.startswith(facts.grafana_url + "/d/"):
        return f"{url!r} is not a panel of {facts.grafana_url}"
    every_label = dict.fromkeys(facts.variables, "x")
    parts = urlsplit(render_template(url, every_label).removeprefix(facts.grafana_url))
    path, query = _PANEL_PATH.match(parts.path), parse_qs(parts.query)
    board = by_uid.get(path.group("uid")) if path else None
    if path is None or board is None:
        return f"{parts.path}: no such dashboard"
    if path.group("slug") != _slug(str(board.get("title", ""))):
        return f"{path.group('slug')} is not the slug of {board.get('title')!r}"
    ids = query.get("viewPanel", [])
    found = [p for p in panels(board) if [str(p.get("id"))] == ids]
    if len(found) != 1:
        return f"{board['uid']} has no panel {ids}"
    names = {v["name"] for v in query_variables(board)}
    unknown = sorted(k for k in query if k.startswith("var-") and k[4:] not in names)
    return f"{board['uid']} has no variables {unknown}" if unknown else None


def alert_links(boards: Sequence[Board], facts: Facts) -> Iterator[Finding]:
    """Every alert's `dashboard_url` (every rule of it, and its runbook section's link) opens a
    real panel, not a row header, of a dashboard with that uid and slug, and sets only
    variables that dashboard has."""
    by_uid = {board.get("uid"): board for board in boards}
    for alert, urls in sorted(facts.alert_urls.items()):
        for url in sorted(urls):
            problem = _link_problem(url, facts, by_uid)
            if problem is not None:
                yield Finding("alert-links", alert, problem)


RULES: dict[str, Callable[[Sequence[Board], Facts], Iterator[Finding]]] = {
    "parses": parses,
    "metric-exists": metric_exists,
    "counter-in-rate": counter_in_rate,
    "rate-interval": rate_interval,
    "unit": unit,
    "datasource": datasource,
    "matchers": matchers,
    "priority-grouping": priority_grouping,
    "exemplars": exemplars,
    "jaeger-link": jaeger_link,
    "thresholds": thresholds,
    "variables": variables,
    "timezone": timezone,
    "links": links,
    "unique-ids": unique_ids,
    "alert-links": alert_links,
}


def lint(boards: Sequence[Board], facts: Facts) -> list[Finding]:
    return [finding for rule in RULES.values() for finding in rule(boards, facts)]
