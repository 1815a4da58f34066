"""Every panel query against a real Prometheus that scraped the real service under load.

The service runs in-process (tests/support/service.py `serve()`: the real app and engine on
loopback) and serves a short load of all three priorities, one refusal per priority (an
over-long request) and an unknown model (404), one of each before the load too, so that the
HTTP-status panel has an increase to show. Prometheus 2.42 (the Debian package) scrapes it every
second, stores exemplars, and evaluates the generated recording rules rendered from the spec at
a 1 s interval; the rate window is the spec's, so every recorded name is the one the dashboards
read (checked): only the clock is faster, and the baseline looks 20 s back instead of an hour.

GPU panels: no GPU exists here, so a second target, the standalone exporter's GPU and host
collectors over the FAKE two-GPU NVML (tests/support/fake_nvml.py, a test double) with one XID
event, feeds them through the real collector code; where a real GPU exists the service's own
GPU collector exports them too. Nothing here needs an event that the load cannot cause, so no
query is excused from returning a series (`EVENT_ONLY` says why, should one ever be).

Variables are substituted as Grafana does with "All" selected everywhere: each variable's own
query is run with the ones before it substituted, and its values go in as an escaped regex
alternation (job's "All" is the list itself); `$__rate_interval` becomes 1m.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from alerts.rules import render_rules
from alerts.spec import SERVICE_JOB, SPEC
from dashboards.datasources import TRACE_ID_LABEL
from dashboards.generate import dashboards
from dashboards.promql import parse
from dashboards.series import VARIABLES, labels_of
from exporters.collector import CollectorGroup
from exporters.gpu import GpuSource
from exporters.host import HostSource
from exporters.server import make_server
from inference.backend import Priority
from tests.dashboards.lint import Board, panels, query_variables
from tests.dashboards.prometheus import Prometheus, PrometheusError
from tests.support.fake_nvml import two_gpus
from tests.support.service import serve
from tests.support.waiting import wait_until

EXPORTER_JOB = "inferwatch-exporter"
RATE_INTERVAL = "1m"
# The spec's rules at a 1 s clock; the same rate window keeps the committed record names.
FAST = replace(
    SPEC.prometheus,
    name="dashboards-test",
    interval=1,
    baseline_window=20,
    baseline_offset=2,
    min_baseline_samples=5,
)
# Panel title -> why its query may return nothing after this test's load. Empty: every query
# must return a series.
EVENT_ONLY: dict[str, str] = {}
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.*),\s*(?P<label>\w+)\s*\)$")
_GRAFANA_REGEX_SPECIALS = re.compile(r"[$^*{}\[\]'+?.()|\\]")


@dataclass
class Live:
    prometheus: Prometheus
    boards: list[Board]
    trace_ids: set[str]
    start: float  # unix time the load began
    values: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # uid -> var -> values


def _regex(values: list[str]) -> str:
    """A multi-value variable as Grafana writes it into a Prometheus query."""
    escaped = [_GRAFANA_REGEX_SPECIALS.sub(lambda m: "\\\\" + m.group(), v) for v in values]
    return "(" + "|".join(escaped) + ")"


def substitute(text: str, values: dict[str, list[str]]) -> str:
    text = text.replace("$__rate_interval", RATE_INTERVAL)
    for name in sorted(values, key=len, reverse=True):
        text = text.replace(f"${{{name}}}", _regex(values[name]))
        text = text.replace(f"${name}", _regex(values[name]))
    return text


def _send_load(base_url: str, model: str) -> None:
    """Enough requests of each priority for the recorded SLIs' traffic gate, plus refusals."""
    # Twice the traffic gate, and more than the observations the most demanding quantile SLI
    # asks for in its window (a p99 needs a few hundred), so every recorded SLI exists.
    needed = math.ceil(
        max(
            2 * SPEC.min_traffic_rps * SPEC.prometheus.rate_window,
            1.2 * max((getattr(b, "min_events", 0) or 0) for b in SPEC.baselines),
        )
    )
    priorities = [p.value for p in Priority]

    async def run() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            served, sent = 0, 0

            async def post(body: dict[str, Any]) -> int:
                return (await client.post("/v1/completions", json=body)).status_code

            # A refusal and a 404 first, so their inferwatch_http_responses_total series are
            # scraped before the ones after the load: rate() needs an increase to see.
            unknown = {"model": "no-such-model", "prompt": "x", "max_tokens": 1}
            assert await post(unknown) == 404
            # Longer than any context, whatever cap a degradation level puts on max_tokens.
            long_prompt = "too long " * 1500
            too_long = {"model": model, "prompt": long_prompt, "max_tokens": 10**6}
            assert 400 <= await post(too_long) < 600

            async def worker() -> None:
                # Adaptive admission may refuse some of a burst (429/503): those are refusals
                # the dashboards show too; the load goes on until enough were served.
                nonlocal served, sent
                while served < needed and sent < 4 * needed:
                    priority, sent = priorities[sent % 3], sent + 1
                    body = {"model": model, "prompt": f"dashboards {sent}", "max_tokens": 4,
                            "priority": priority}  # fmt: skip
                    status = await post(body)
                    assert status in (200, 429, 503), status
                    served += status == 200

            await asyncio.gather(*(worker() for _ in range(8)))
            assert served >= needed, f"{served} of {sent} served"
            for priority in priorities:  # prompt_too_long, or the admission gate's limit first
                too_long = {"model": model, "prompt": long_prompt, "max_tokens": 10**6,
                            "priority": priority}  # fmt: skip
                assert 400 <= await post(too_long) < 600
            assert await post(unknown) == 404

    asyncio.run(run())


def _fake_gpu_exporter() -> tuple[Any, GpuSource, str]:
    """The standalone exporter's collectors over the FAKE NVML, one XID counted, served."""
    fake = two_gpus()
    gpu = GpuSource(nvml=fake, cache_seconds=0.0)
    registry = CollectorRegistry()
    registry.register(CollectorGroup([gpu, HostSource()]))
    generate_latest(registry)  # starts the XID watcher
    assert wait_until(lambda: bool(fake.event_sets) and len(fake.event_sets[0].handles) == 2)
    fake.emit_xid(0, 79)
    assert wait_until(lambda: b"inferwatch_gpu_xid_errors_total" in generate_latest(registry))
    server = make_server(registry, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, gpu, f"127.0.0.1:{server.server_address[1]}"


def _recorded_names(boards: list[Board]) -> set[str]:
    return {
        s.name
        for board in boards
        for panel in panels(board)
        for target in panel["targets"]
        for s in parse(target["expr"]).selectors
        if ":" in s.name
    }


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("dashboards-live")
    rules = []
    for name, text in render_rules(SPEC, FAST, "runbooks.md").items():
        (tmp / name).write_text(text)
        rules.append(tmp / name)
    boards = [json.loads(text) for text in dashboards().values()]
    exporter, gpu, exporter_target = _fake_gpu_exporter()
    thread, app, backend, spans = serve()
    try:
        with thread as base_url:
            service_target = base_url.removeprefix("http://")
            jobs = {SERVICE_JOB: [service_target], EXPORTER_JOB: [exporter_target]}
            prometheus = Prometheus(tmp, rules, jobs)
            try:
                # Counters must be scraped at 0 before the load, or rate() sees no increase.
                assert wait_until(
                    lambda: len(prometheus.instant("up == 1")) == 2, timeout=30, interval=0.2
                ), prometheus.log.read_text()[-2000:]
                start = time.time()
                _send_load(base_url, backend.model_name)
                needed = _recorded_names(boards)
                missing: set[str] = set(needed)

                def recorded() -> bool:
                    """All at once: a baseline appears some evaluations after its SLI."""
                    missing.clear()
                    missing.update(n for n in needed if not prometheus.instant(f"count({n})"))
                    return not missing

                assert wait_until(recorded, timeout=90, interval=0.5), f"never recorded: {missing}"
                trace_ids = {format(s.context.trace_id, "032x") for s in spans.get_finished_spans()}
                yield Live(prometheus, boards, trace_ids, start)
            finally:
                prometheus.stop()
    finally:
        exporter.shutdown()
        gpu.close()


def _variable_values(live: Live, board: Board) -> dict[str, list[str]]:
    """Each variable's values, its query run with the variables before it substituted."""
    if board["uid"] in live.values:
        return live.values[board["uid"]]
    values: dict[str, list[str]] = {}
    for variable in query_variables(board):
        match = _LABEL_VALUES.match(variable["query"])
        assert match, variable["query"]
        series = live.prometheus.api(
            "series",
            **{"match[]": substitute(match.group("selector"), values)},
            start=live.start - 5,
            end=time.time(),
        )
        found = sorted({s[match.group("label")] for s in series if match.group("label") in s})
        assert found, f"{board['uid']}: ${variable['name']} lists nothing"
        values[variable["name"]] = found
    live.values[board["uid"]] = values
    return values


def test_the_test_rules_record_the_names_the_dashboards_read() -> None:
    """The faster clock changes no recorded name: those of the spec's Prometheus timing
    (alerts/generated/*.rules.yml, drift-checked by `inferwatch generate --check`)."""

    def records(texts: list[str]) -> set[str]:
        return {
            rule["record"]
            for text in texts
            for group in yaml.safe_load(text)["groups"]
            for rule in group["rules"]
            if "record" in rule
        }

    fast = records(list(render_rules(SPEC, FAST, "runbooks.md").values()))
    assert fast == records(list(render_rules(SPEC, SPEC.prometheus, "runbooks.md").values()))


@pytest.mark.parametrize("uid", ["inferwatch-overview", "inferwatch-engine",
                                 "inferwatch-gpu-host", "inferwatch-alerts"])  # fmt: skip
def test_every_variable_lists_the_real_values(live: Live, uid: str) -> None:
    board = next(b for b in live.boards if b["uid"] == uid)
    values = _variable_values(live, board)
    assert tuple(values) == VARIABLES
    assert set(values["job"]) == {SERVICE_JOB, EXPORTER_JOB}
    assert len(values["instance"]) == 2
    assert set(values["priority"]) == {p.value for p in Priority}


@pytest.mark.parametrize("uid", ["inferwatch-overview", "inferwatch-engine",
                                 "inferwatch-gpu-host", "inferwatch-alerts"])  # fmt: skip
def test_every_panel_query_parses_and_returns_series(live: Live, uid: str) -> None:
    board = next(b for b in live.boards if b["uid"] == uid)
    values = _variable_values(live, board)
    problems = []
    for panel in panels(board):
        for target in panel["targets"]:
            query = substitute(target["expr"], values)
            where = f"{panel['title']} / {target['refId']}"
            try:
                result = live.prometheus.since(query, live.start - 5)
            except PrometheusError as exc:
                problems.append(f"{where}: {exc}\n    {query}")
                continue
            if not result and panel["title"] not in EVENT_ONLY:
                problems.append(f"{where}: no series\n    {query}")
    assert problems == [], "\n".join(problems)


def test_latency_panels_exemplars_are_traces_the_service_recorded(live: Live) -> None:
    """What Grafana's exemplar query gets: trace ids of real spans, under the label the
    Prometheus datasource sends to Jaeger."""
    checked = 0
    for board in live.boards:
        values = _variable_values(live, board)
        for panel in panels(board):
            for target in (t for t in panel["targets"] if t.get("exemplar")):
                found = live.prometheus.api(
                    "query_exemplars",
                    query=substitute(target["expr"], values),
                    start=live.start - 5,
                    end=time.time(),
                )
                ids = {e["labels"].get(TRACE_ID_LABEL) for s in found for e in s["exemplars"]}
                assert ids, f"{panel['title']} / {target['refId']}: no exemplars"
                assert ids <= live.trace_ids, f"{panel['title']}: unknown trace ids"
                checked += 1
    assert checked >= 8


def test_recorded_series_carry_exactly_the_labels_the_dashboards_filter_on(live: Live) -> None:
    for name in sorted(_recorded_names(live.boards)):
        series = live.prometheus.api(
            "series", **{"match[]": name}, start=live.start - 5, end=time.time()
        )
        assert series, name
        carried = {label for s in series for label in s if label in VARIABLES}
        assert carried == set(labels_of(name)), name
