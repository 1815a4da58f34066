"""The whole loop with real processes on loopback: traffic, a baseline alert, a page to the
service's webhook, the controller shedding load, recovery.

`deploy/stack.py` (what `inferwatch stack up` runs) starts the service on the tiny model with
a small KV cache (so an overload is reachable on a CPU), the standalone exporter, Prometheus
and Alertmanager from the generated configurations. Only the clocks are faster, and only by
configuration: Prometheus scrapes and evaluates every second, and its rules are the spec's own
rules rendered by `alerts.rules.render_rules` with a faster `Timing` (`FAST`: 30 s rate
windows, a baseline of the minute before the last 10 s, `for:` and SLO windows scaled by
1/60). Alertmanager runs the generated routing tree with the service webhook repeating every
20 s instead of 5 m, and the service's alert lease is 45 s instead of 660 s (the same ratio).
The service exports its spans over OTLP/HTTP to `OtlpSink` (Jaeger's stand-in).

Why the lease matters here: in 1 run of 4 with the production lease, a flapping alert's
demands outlived its resolution by minutes (docs/deployment.md, "A gap the test found"); the
scaled lease bounds that, as the production one does at 660 s.

The phases wait on conditions with deadlines, never on sleeps; each returns when its condition
holds and raises AssertionError (with what was last seen) when its deadline passes. Used by
tests/e2e/test_incident_loop.py and by `python -m benchmarks.incident` (the README's picture).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from alerts.baseline import BASELINE, baseline_rules
from alerts.rules import render_rules
from alerts.spec import SPEC
from deploy.stack import Stack, StackConfig
from tests.e2e.load import Load, Phase
from tests.support.exposition import total
from tests.support.otlp_sink import OtlpSink
from tests.support.serve_process import free_port
from tests.support.waiting import wait_until

# The spec's rules on a faster clock: the same expressions, thresholds and breach factor.
FAST = replace(
    SPEC.prometheus,
    name="e2e",
    interval=1,
    rate_window=30,
    baseline_window=60,
    baseline_offset=10,
    min_baseline_samples=20,
    duration_scale=1 / 60,
)
# Steady: 3 req/s of short prompts holds the 60 observations a p95 SLI needs in a 30 s window.
# Overload: ten times the arrivals, each with a 600-byte prompt (600 tokens of the tiny model's
# byte tokenizer) and four times the output. Short prompts do not make an overload on a fast
# machine: at 30 req/s of 25 + 32 tokens a quiet 2-core machine served everything with a TTFT
# p95 of 20 ms, under the 50 ms floor of the TTFT baseline, and in CI no baseline alert fired.
# Each long prompt fills a good part of the 64-block cache, so requests queue for blocks behind
# the admission gate on any machine (TTFT p95 0.55 s here).
STEADY = Phase(rate=3.0, max_tokens=8)
OVERLOAD = Phase(rate=30.0, max_tokens=32, prompt_chars=600)
# Alertmanager repeats a firing group to the service every WEBHOOK_REPEAT (5 m in production)
# and the service holds an alert it stops hearing for a lease of about twice that (660 s).
WEBHOOK_REPEAT_S, ALERT_LEASE_S = 20, 45
SERVE_ARGS = [
    "--model", "tiny", "--num-kv-blocks", "64",
    # The controller's own clocks, shortened like Prometheus': step up after 2 s, down after 5 s.
    "--degradation-dwell-seconds", "2", "--degradation-cooldown-seconds", "5",
    "--alert-lease-seconds", str(ALERT_LEASE_S),
]  # fmt: skip
SPAN_ENV = {
    "OTEL_TRACES_SAMPLER": "always_on",
    "OTEL_BSP_SCHEDULE_DELAY": "500",  # ms: exported within a second, not five
    "OTEL_BSP_MAX_QUEUE_SIZE": "100000",  # an overload's spans are not dropped before export
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2048",
}
BASELINE_SUFFIX = "AboveBaseline"
# The overload must be able to breach these; their baselines must exist before it starts.
QUANTILE_ALERTS = ("InferwatchTimeToFirstTokenAboveBaseline", "InferwatchQueueWaitAboveBaseline")
Say = Callable[[str], None]


@dataclass
class Loop:
    stack: Stack
    sink: OtlpSink
    load: Load
    service: str
    prometheus: str
    alertmanager: str
    admin: dict[str, str]
    say: Say
    marks: dict[str, float] = field(default_factory=dict)  # phase name -> unix time it began
    facts: dict[str, Any] = field(default_factory=dict)  # what the phases saw

    def __post_init__(self) -> None:
        self.http = httpx.Client(timeout=30)

    # -- reading the parts ---------------------------------------------------------------------
    def prom(self, path: str, **params: Any) -> Any:
        body = self.http.get(f"{self.prometheus}/api/v1/{path}", params=params).json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        return self.prom("query", query=promql)["result"]

    def targets(self) -> list[tuple[str, str]]:
        answer = self.http.get(f"{self.prometheus}/api/v1/targets")
        active = answer.json()["data"]["activeTargets"] if answer.status_code == 200 else []
        return sorted((t["labels"]["job"], t["health"]) for t in active)

    def alerts(self) -> list[dict[str, Any]]:
        return self.prom("alerts")["alerts"]

    def degradation(self) -> dict[str, Any]:
        return self.http.get(f"{self.service}/admin/degradation", headers=self.admin).json()

    def level(self) -> int:
        return int(self.degradation()["level"])

    def notifications(self, status: str) -> float:
        text = self.http.get(f"{self.service}/metrics").text
        return total(text, "inferwatch_alert_notifications_total", status=status)

    def complete(self, priority: str, max_tokens: int = 4) -> httpx.Response:
        body = {"prompt": f"probe {priority}", "max_tokens": max_tokens, "priority": priority}
        return self.http.post(f"{self.service}/v1/completions", json=body, timeout=120)

    def close(self) -> None:
        self.http.close()


def _until(what: str, check: Callable[[], bool], timeout: float, seen: Callable[[], Any]) -> None:
    """wait_until, with transport errors as a false answer and what was seen in the failure."""

    def safe() -> bool:
        try:
            return check()
        except (httpx.HTTPError, KeyError, ValueError):
            return False

    if not wait_until(safe, timeout=timeout, interval=0.25):
        raise AssertionError(f"no {what} within {timeout:.0f} s; last seen: {seen()}")


def fast_rules(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render_rules(SPEC, FAST, "alerts/generated/runbooks.md").items():
        (folder / name).write_text(text)
        paths.append(folder / name)
    return paths


def faster_webhook(tree: dict[str, Any]) -> dict[str, Any]:
    """The generated routing tree with the service webhook's repeat at WEBHOOK_REPEAT_S."""
    for route in tree["route"]["routes"]:
        if route["receiver"] == "service-webhook":
            route["repeat_interval"] = f"{WEBHOOK_REPEAT_S}s"
    return tree


@contextlib.contextmanager
def running(run_dir: Path, say: Say = print) -> Iterator[Loop]:
    """The stack up (every part ready), the load driver started at rate 0, then torn down."""
    sink = OtlpSink().start()
    ports = {name: free_port() for name in ("svc", "exp", "prom", "am")}
    config = StackConfig(
        run_dir=run_dir, service_port=ports["svc"], exporter_port=ports["exp"],
        prometheus_port=ports["prom"], alertmanager_port=ports["am"],
        scrape_interval=1.0, evaluation_interval=1.0, serve_args=SERVE_ARGS,
        rule_files=fast_rules(run_dir / "rules"),
        service_env={"OTEL_EXPORTER_OTLP_ENDPOINT": sink.base_url, **SPAN_ENV},
        alertmanager_edit=faster_webhook,
    )  # fmt: skip
    stack = Stack(config, say=say)
    stack.prepare()
    loop: Loop | None = None
    try:
        stack.start()
        service = f"http://127.0.0.1:{ports['svc']}"
        model = httpx.get(f"{service}/v1/models", timeout=10).json()["data"][0]["id"]
        token = (run_dir / "admin.token").read_text().strip()
        loop = Loop(
            stack=stack, sink=sink, load=Load(service, model).start(), service=service,
            prometheus=f"http://127.0.0.1:{ports['prom']}",
            alertmanager=f"http://127.0.0.1:{ports['am']}",
            admin={"Authorization": f"Bearer {token}"}, say=say,
        )  # fmt: skip
        yield loop
    finally:
        if loop is not None:
            loop.load.stop()
            loop.close()
        stack.stop()
        sink.close()


# -- the phases ------------------------------------------------------------------------------
EXPECTED_TARGETS = [("inferwatch", "up"), ("inferwatch-exporter", "up")]


def steady(loop: Loop) -> None:
    """Every target up, then steady traffic until the baselines exist (a breach needs one)."""
    _until("target up", lambda: loop.targets() == EXPECTED_TARGETS, 120, loop.targets)
    loop.marks["steady"] = time.time()
    loop.load.phase = STEADY
    for priority in ("premium", "standard", "batch"):  # a refusal per priority, for the boards
        loop.complete(priority, max_tokens=10**6)
    wanted = [
        rule.baseline_record
        for rule in baseline_rules(SPEC, FAST)
        if rule.signal.alert in QUANTILE_ALERTS
    ]

    def present() -> list[str]:
        return [name for name in wanted if loop.query(f"count({name})")]

    _until("baseline", lambda: present() == wanted, 240, present)
    loop.say(f"steady: baselines exist after {time.time() - loop.marks['steady']:.0f} s")


def _baseline_alerts(loop: Loop, state: str) -> list[dict[str, Any]]:
    return [
        a
        for a in loop.alerts()
        if a["labels"]["alertname"].endswith(BASELINE_SUFFIX)
        and a["labels"].get("basis") == BASELINE
        and a["state"] == state
    ]


def _heard(loop: Loop) -> bool:
    """The controller holds a demand from Alertmanager's webhook (its snapshot is kept)."""
    snapshot = loop.degradation()
    if any(r["trigger"] == "alertmanager" for r in snapshot["reasons"]):
        loop.facts["delivered"] = snapshot
        return loop.notifications("accepted") >= 1
    return False


def overload(loop: Loop) -> None:
    """Ten times the steady load until a baseline alert fires, Alertmanager has delivered it to
    the service, the level is up and batch is refused while premium is served."""
    loop.marks["overload"] = time.time()
    loop.load.phase = OVERLOAD

    def firing() -> list[dict[str, Any]]:
        return _baseline_alerts(loop, "firing")

    _until("baseline alert firing", lambda: bool(firing()), 180, loop.alerts)
    loop.facts["firing"] = sorted({a["labels"]["alertname"] for a in firing()})
    loop.say(f"overload: firing {loop.facts['firing']}")
    _until("webhook delivery", lambda: _heard(loop), 90, loop.degradation)
    _until("level up", lambda: loop.level() >= 1, 60, loop.degradation)
    shed: httpx.Response | None = None

    def batch_shed() -> bool:
        nonlocal shed
        shed = loop.complete("batch")
        return shed.status_code == 503 and "retry-after" in shed.headers

    _until("batch refused", batch_shed, 60, lambda: shed and (shed.status_code, shed.headers))
    assert shed is not None
    loop.facts["batch_refusal"] = (shed.status_code, shed.headers["retry-after"], shed.json())
    served: list[int] = []

    def premium_served() -> bool:
        served.append(loop.complete("premium").status_code)
        return served[-1] == 200 and loop.level() >= 1

    _until("premium served while degraded", premium_served, 90, lambda: served[-5:])
    loop.facts["premium_statuses"] = served
    loop.facts["degradation"] = loop.degradation()
    loop.say(f"overload: level {loop.facts['degradation']['level']}, batch 503, premium 200")


def _acting(loop: Loop) -> list[str]:
    """Alerts still pending or firing that the controller acts on or that compare a baseline."""
    return sorted(
        f"{a['labels']['alertname']}/{a['state']}"
        for a in loop.alerts()
        if "action" in a["labels"] or a["labels"]["alertname"].endswith(BASELINE_SUFFIX)
    )


def recover(loop: Loop) -> None:
    """Back to the steady load until those alerts resolve and the level is 0 again."""
    loop.marks["recover"] = time.time()
    loop.load.phase = STEADY
    _until("alerts resolved", lambda: not _acting(loop), 240, lambda: _acting(loop))
    _until("level 0", lambda: loop.level() == 0, 180, loop.degradation)
    loop.marks["recovered"] = time.time()
    loop.facts["after"] = loop.degradation()
    loop.facts["still_active"] = sorted(
        f"{a['labels']['alertname']}{a['labels'].get('long_window', '')}" for a in loop.alerts()
    )
    loop.say(f"recovered after {loop.marks['recovered'] - loop.marks['recover']:.0f} s")
