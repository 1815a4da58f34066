"""Every generated dashboard query against the end-to-end Prometheus.

The dashboards read the recorded names of the committed rules (`..._rate5m`); the scenario's
Prometheus runs the same rules on a faster clock, whose recorded names carry its own windows
(`..._rate30s`). `renames()` pairs the two renderings record by record (the same spec renders
the same rules in the same order, whatever the timing), and each query is translated before
Grafana's variable substitution (tests/dashboards/test_live_queries.py `substitute`).

GPU panels are excepted: no GPU exists on this machine, so `inferwatch_gpu_*` has no series
(tests/dashboards/test_live_queries.py feeds them through a fake NVML instead).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from alerts.rules import render_rules
from alerts.spec import SPEC, Timing
from dashboards.promql import parse
from tests.dashboards.lint import Board, panels, query_variables
from tests.dashboards.test_live_queries import substitute

ROOT = Path(__file__).resolve().parents[2]
GPU_PREFIX = "inferwatch_gpu_"
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.*),\s*(?P<label>\w+)\s*\)$")


def boards() -> list[Board]:
    found = sorted((ROOT / "dashboards" / "generated").glob("*.json"))
    return [json.loads(path.read_text()) for path in found]


def _records(timing: Timing) -> list[str]:
    return [
        rule["record"]
        for text in render_rules(SPEC, timing, "runbooks.md").values()
        for group in yaml.safe_load(text)["groups"]
        for rule in group["rules"]
        if "record" in rule
    ]


def renames(fast: Timing) -> dict[str, str]:
    pairs = zip(_records(SPEC.prometheus), _records(fast), strict=True)
    return {committed: ours for committed, ours in pairs if committed != ours}


def translate(query: str, names: dict[str, str]) -> str:
    if not names:
        return query
    alternation = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.sub(rf"(?<![\w:])({alternation})(?![\w:])", lambda m: names[m.group(1)], query)


def is_gpu(panel: dict[str, Any]) -> bool:
    return any(
        s.name.startswith(GPU_PREFIX)
        for target in panel["targets"]
        for s in parse(target["expr"]).selectors
    )


def variable_values(prom: Any, board: Board, start: float, end: float) -> dict[str, list[str]]:
    """Each variable's values as Grafana lists them with "All" selected (its query run with
    the variables before it substituted); `prom(path, **params)` is the API's `data`."""
    values: dict[str, list[str]] = {}
    for variable in query_variables(board):
        match = _LABEL_VALUES.match(variable["query"])
        assert match, variable["query"]
        selector = substitute(match.group("selector"), values)
        series = prom("series", **{"match[]": selector}, start=start, end=end)
        label = match.group("label")
        values[variable["name"]] = sorted({s[label] for s in series if label in s}) or [".*"]
    return values


def reads(query: str, records: set[str]) -> bool:
    return any(re.search(rf"(?<![\w:]){re.escape(r)}(?![\w:])", query) for r in records)


def empty_queries(
    prom: Any, fast: Timing, start: float, end: float, unreachable: set[str]
) -> tuple[list[str], list[str], int]:
    """(queries with no series or an error, queries excused because they read a record in
    `unreachable` (named as the scenario's rules record it), how many ran); GPU excepted."""
    names, problems, excused, ran = renames(fast), [], [], 0
    for board in boards():
        values = variable_values(prom, board, start, end)
        for panel in panels(board):
            if is_gpu(panel):
                continue
            for target in panel["targets"]:
                query = substitute(translate(target["expr"], names), values)
                ran += 1
                where = f"{board['uid']} / {panel['title']} / {target['refId']}"
                try:
                    result = prom("query_range", query=query, start=start, end=end, step=2)
                except AssertionError as exc:
                    problems.append(f"{where}: {exc}")
                    continue
                if not result["result"]:
                    (excused if reads(query, unreachable) else problems).append(
                        f"{where}: no series\n    {query}"
                    )
    return problems, excused, ran


def exemplar_queries(prom: Any, fast: Timing, start: float, end: float) -> list[str]:
    """The latency panels' exemplar queries (what Grafana asks /api/v1/query_exemplars)."""
    names, out = renames(fast), []
    for board in boards():
        values = variable_values(prom, board, start, end)
        out += [
            substitute(translate(target["expr"], names), values)
            for panel in panels(board)
            for target in panel["targets"]
            if target.get("exemplar")
        ]
    return out
