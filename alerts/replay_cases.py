"""Realistic raw traffic replayed through every generated rule file: the review's cases.

A review replayed the service's own bucket layouts and label sets, whole-number counts,
restarts, replicas and rollouts through the rules and found seven ways they lied; each is a
case here, stated the right way round, next to the cases that were right and must stay so.
Every case is a promtool test file, alerts/generated/tests/replay_<name>.test.yml, over all
three rule files, and tests/alerts/test_replay_cases.py shows each of the seven failing
against the rules (or buckets, or thresholds) that had the flaw. Latencies spread log-normally
(alerts/realistic.py); expectations are stated from the design: silent means never pending nor
firing over the whole run, firing means exactly these alerts fire at that time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from alerts.annotations import Links
from alerts.detection_delays import delay_of
from alerts.exposition import (
    DURATION,
    INTER_TOKEN,
    QUEUE_WAIT,
    SCRAPE_INTERVAL_S,
    TTFT,
)
from alerts.promql_text import duration
from alerts.promtool_format import (
    alert_test,
    expected_alert,
    expr_test,
    input_series,
    unit_test_file,
)
from alerts.raw_series import ALL_STANDARD, Load, Replica, Traffic, build_series, slower
from alerts.realistic import Realistic, Stalls
from alerts.rules import BURN_ALERT, baselines_group, guards_group, slos_group
from alerts.spec_types import SERVICE_JOB, Spec

STEP_AT = 5400  # 1h30m: every baseline (own and fleet) has existed for 45 minutes
RULE_FILES = ("../baselines.rules.yml", "../guards.rules.yml", "../slos.rules.yml")
ERROR_HIGH, LATENCY_HIGH, REFUSAL_HIGH = (
    "InferwatchErrorRatioHigh",
    "InferwatchRequestLatencyHigh",
    "InferwatchRefusalRatioHigh",
)
TTFT_ALERT = "InferwatchTimeToFirstTokenAboveBaseline"
LATENCY_ALERT = "InferwatchRequestLatencyAboveBaseline"
ERROR_ALERT = "InferwatchErrorRatioAboveBaseline"
QUEUE_DEPTH_ALERT = "InferwatchQueueDepthAboveBaseline"
REALISTIC = Realistic()
STEADY = Load(served_rps=20.0, queue_depth=8)


@dataclass(frozen=True)
class Firing:
    """At `at_s`, exactly these (instance, basis) alerts named `alert` fire ("" for a guard)."""

    at_s: int
    alert: str
    alerts: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class ReplayCase:
    name: str  # the file: replay_<name>.test.yml
    title: str
    traffic: Traffic
    silent: tuple[str, ...] = ()  # never pending nor firing over the run
    firing: tuple[Firing, ...] = ()
    finding: int | None = None  # the review's finding it answers; None: was right, stays so
    exprs: tuple[tuple[int, str, tuple[tuple[dict[str, str], float], ...]], ...] = ()

    @property
    def file(self) -> str:
        return f"replay_{self.name}.test.yml"


def _rules(spec: Spec, base: Links | str) -> list[dict[str, Any]]:
    timing = spec.prometheus
    groups = (baselines_group, guards_group, slos_group)
    return [rule for group in groups for rule in group(spec, timing, base)["rules"]]


def _rule(rules: list[dict[str, Any]], alert: str, basis: str) -> dict[str, Any]:
    return next(
        r for r in rules
        if r.get("alert") == alert and (not basis or r["labels"].get("basis") == basis)
    )  # fmt: skip


def _target(instance: str) -> dict[str, str]:
    return {"instance": instance, "job": SERVICE_JOB, "model": "m1"}


def _one(load: Load, *phases: tuple[int, Load], instance: str = "a:8000", **kw: Any) -> Replica:
    return Replica(instance=instance, phases=((0, load), *phases), **kw)


def _traffic(*replicas: Replica, duration_s: int, **kw: Any) -> Traffic:
    return Traffic(replicas=replicas, duration_s=duration_s, shape=kw.pop("shape", REALISTIC),
                   step_s=SCRAPE_INTERVAL_S, **kw)  # fmt: skip


def baseline_alerts(spec: Spec) -> tuple[str, ...]:
    return tuple(s.alert for s in spec.baselines)


def cases(spec: Spec) -> tuple[ReplayCase, ...]:
    """Every replay case for `spec` (its alert names and stated delays)."""
    baselines = baseline_alerts(spec)
    guards = (ERROR_HIGH, LATENCY_HIGH, REFUSAL_HIGH)
    everything = (*baselines, *guards, BURN_ALERT)
    ttft_delay = delay_of(spec, TTFT_ALERT)
    low = Load(served_rps=0.15, queue_depth=0)  # 2 requests per scrape: 40 in 5 minutes
    refused = Load(served_rps=4.0, failed=0.2, refused_rps=(("queue_full", 16.0),), queue_depth=8)
    narrow = Realistic(output_tokens=(75.0, 0.05), duration_spread=0.1)  # median 2.5 s, p99 3.2 s
    stalls = Stalls(base=REALISTIC, family=INTER_TOKEN, share=0.015, at=0.29)
    drift = tuple(
        (t, replace(STEADY, slowdown=slower(2 ** (t / 21600), TTFT, DURATION)))
        for t in range(600, 21601, 600)
    )
    blip = replace(STEADY, failed=0.1, slowdown=slower(2.0))
    slow = replace(STEADY, slowdown=slower(2.0, TTFT))
    return (
        ReplayCase(
            name="single_failure_at_low_traffic",
            title="one failure among 40 requests in 5 minutes is no breach (0.13 req/s)",
            traffic=_traffic(
                _one(low, (STEP_AT, replace(low, failures_at=(STEP_AT + 60,)))),
                duration_s=STEP_AT + 1800,
                families=(),
            ),
            silent=(ERROR_ALERT, ERROR_HIGH),
            finding=1,
        ),
        ReplayCase(
            name="five_failures_at_low_traffic",
            title="five failures among 40 requests are: the baseline alert and the page fire",
            traffic=_traffic(
                _one(
                    low,
                    (
                        STEP_AT,
                        replace(low, failures_at=tuple(STEP_AT + 15 * k for k in range(1, 6))),
                    ),
                ),  # fmt: skip
                duration_s=STEP_AT + 900,
                families=(),
            ),
            # The 5th failure is in the sample at +75 s, the evaluation at +90 s the first to see
            # it: pending there, firing two evaluations later.
            firing=(
                Firing(STEP_AT + 120, ERROR_ALERT),
                Firing(STEP_AT + 120, ERROR_HIGH),
                Firing(STEP_AT + 150, ERROR_ALERT, (("a:8000", "baseline"), ("a:8000", "fleet"))),
                Firing(STEP_AT + 150, ERROR_HIGH, (("a:8000", ""),)),
            ),
        ),
        ReplayCase(
            name="refused_prompts_do_not_open_the_gate",
            title="1 req/s of oversized prompts and 4 slow requests a minute: no latency SLI",
            traffic=_traffic(
                _one(
                    Load(
                        served_rps=1 / 15,
                        refused_rps=(("prompt_too_long", 1.0),),
                        slowdown=slower(10.0, TTFT, QUEUE_WAIT),
                    )
                ),
                duration_s=3600,
            ),
            silent=(*baselines, *guards),
            finding=2,
            exprs=((3600, f"model:{TTFT}:p95_rate5m", ()),),
        ),
        ReplayCase(
            name="refusals_do_not_dilute_failures",
            title="80% refused and 20% of the served failing: the error ratio reads 20%, pages",
            traffic=_traffic(
                _one(Load(served_rps=4.0, queue_depth=8), (STEP_AT, refused)),
                duration_s=STEP_AT + 900,
                families=(),
            ),
            # 20% of the served fail from the step: the ratio passes 5% once a quarter of the
            # window is new (the 3rd evaluation), the page fires two evaluations later.
            firing=(
                Firing(STEP_AT + 120, ERROR_HIGH),
                Firing(STEP_AT + 180, ERROR_HIGH, (("a:8000", ""),)),
                Firing(STEP_AT + 180, ERROR_ALERT, (("a:8000", "baseline"), ("a:8000", "fleet"))),
                Firing(STEP_AT + 600, REFUSAL_HIGH, (("a:8000", ""),)),
            ),
            finding=3,
        ),
        ReplayCase(
            name="fine_buckets_see_a_1_3x_step_as_1_3x",
            title="a true 1.3x step in request durations (median 2.5 s, narrow) stays silent",
            traffic=_traffic(
                _one(STEADY, (STEP_AT, replace(STEADY, slowdown=slower(1.3, DURATION)))),
                duration_s=STEP_AT + 2700,
                shape=narrow,
                families=(DURATION,),
            ),
            silent=(LATENCY_ALERT,),
            finding=4,
            exprs=(
                (
                    STEP_AT + 600,
                    f"model:{DURATION}:p99_rate5m / on(instance, job, model) "
                    f"model:{DURATION}:p99_rate5m_baseline > bool 1.2",
                    ((_target("a:8000"), 1.0),),
                ),
            ),
        ),
        ReplayCase(
            name="thresholds_on_bucket_bounds_read_true",
            title="p99 inter-token latency: truly 0.29 s reads at most 0.4 s; truly 0.45 s fires",
            traffic=_traffic(
                _one(STEADY),
                _one(replace(STEADY, slowdown=slower(0.45 / 0.29, INTER_TOKEN)), instance="c:8000"),
                duration_s=1800,
                shape=stalls,
                families=(INTER_TOKEN,),
            ),  # fmt: skip
            firing=(Firing(1800, LATENCY_HIGH, (("c:8000", ""),)),),
            finding=4,
            exprs=(
                (
                    1800,
                    f'count_over_time(ALERTS{{alertname="{LATENCY_HIGH}", instance="a:8000"}}'
                    "[30m])",
                    (),
                ),
            ),
        ),
        ReplayCase(
            name="rollout_of_a_regression_fires_on_the_new_pods",
            title="new pods (new instances) with 2x first-token latency fire against the fleet",
            traffic=_traffic(
                _one(STEADY, end_s=STEP_AT + 60),
                _one(STEADY, instance="b:8000", end_s=STEP_AT + 60),
                _one(slow, instance="c:8000", start_s=STEP_AT),
                _one(slow, instance="d:8000", start_s=STEP_AT),
                duration_s=STEP_AT + 1800,
                families=(TTFT,),
            ),  # fmt: skip
            firing=(
                Firing(STEP_AT + 60, TTFT_ALERT),
                Firing(
                    STEP_AT + ttft_delay,
                    TTFT_ALERT,
                    (("c:8000", "fleet"), ("d:8000", "fleet")),
                ),
            ),
            finding=5,
        ),
        ReplayCase(
            name="llm_durations_are_no_cold_start",
            title="a new deployment with LLM durations (median 3 s, p99 23 s) stays silent",
            traffic=_traffic(_one(STEADY), duration_s=3 * 3600),
            silent=everything,
            finding=7,
        ),
        ReplayCase(
            name="restart",
            title="a restart (every counter back to zero) is silent",
            traffic=_traffic(_one(STEADY, restarts_at=(STEP_AT,)), duration_s=STEP_AT + 1800),
            silent=everything,
        ),
        ReplayCase(
            name="traffic_drop",
            title="traffic falling from 20 to 1 req/s, then to nothing, is silent",
            traffic=_traffic(
                _one(
                    STEADY,
                    (STEP_AT, replace(STEADY, served_rps=1.0)),
                    (STEP_AT + 1800, Load(served_rps=0.0)),
                ),
                duration_s=STEP_AT + 3600,
            ),
            silent=everything,
        ),
        ReplayCase(
            name="slow_drift",
            title="latencies doubling over 6 hours are silent",
            traffic=_traffic(
                _one(STEADY, *drift),
                duration_s=21600,
                families=(TTFT, DURATION),
                split=ALL_STANDARD,
            ),  # fmt: skip
            silent=baselines,
        ),
        ReplayCase(
            name="short_blip",
            title="30 s of doubled latencies and 10% failures is silent",
            traffic=_traffic(
                _one(STEADY, (STEP_AT, blip), (STEP_AT + 30, STEADY)), duration_s=STEP_AT + 1800
            ),
            silent=everything,
        ),
        ReplayCase(
            name="one_replica_degrades",
            title="one of two replicas at 2x first-token latency: only it fires",
            traffic=_traffic(
                _one(STEADY),
                _one(
                    STEADY,
                    (STEP_AT, replace(STEADY, slowdown=slower(2.0, TTFT))),
                    instance="b:8000",
                ),
                duration_s=STEP_AT + 1200,
                families=(TTFT,),
            ),  # fmt: skip
            firing=(
                Firing(STEP_AT + 600, TTFT_ALERT, (("b:8000", "baseline"), ("b:8000", "fleet"))),
            ),
            exprs=(
                (
                    STEP_AT + 1200,
                    f'count_over_time(ALERTS{{alertname="{TTFT_ALERT}", instance="a:8000"}}[20m])',
                    (),
                ),
            ),
        ),
        ReplayCase(
            name="queue_depth_spike_of_two_evaluations",
            title="queue depth at 4x for two evaluations stays pending",
            traffic=_traffic(
                _one(
                    STEADY,
                    (STEP_AT, replace(STEADY, queue_depth=32)),
                    (STEP_AT + 60, STEADY),
                ),
                duration_s=STEP_AT + 600,
                families=(),
            ),
            exprs=(
                (
                    STEP_AT + 600,
                    f'count_over_time(ALERTS{{alertname="{QUEUE_DEPTH_ALERT}", '
                    'alertstate="firing"}[10m])',
                    (),
                ),
                (
                    STEP_AT + 600,
                    f'sum by (basis) (count_over_time(ALERTS{{alertname="{QUEUE_DEPTH_ALERT}", '
                    'alertstate="pending"}[10m]))',
                    (({"basis": "baseline"}, 2.0), ({"basis": "fleet"}, 2.0)),
                ),
            ),
        ),
    )


def _silence(alert: str, end_s: int) -> dict[str, Any]:
    return expr_test(
        end_s, f'count_over_time(ALERTS{{alertname="{alert}"}}[{duration(end_s)}])', []
    )


def case_test(spec: Spec, case: ReplayCase, links: Links | str) -> dict[str, Any]:
    """One promtool test of a case, expectations resolved against `spec`'s rules."""
    rules = _rules(spec, links)
    end = case.traffic.duration_s
    alert_tests = [
        alert_test(
            f.at_s,
            f.alert,
            [expected_alert(_rule(rules, f.alert, basis), _target(i)) for i, basis in f.alerts],
        )
        for f in case.firing
    ]
    alert_tests += [alert_test(end, alert, []) for alert in case.silent]
    exprs = [_silence(alert, end) for alert in case.silent]
    exprs += [expr_test(at, expr, list(samples)) for at, expr, samples in case.exprs]
    return {
        "name": case.title,
        "interval": duration(case.traffic.step_s),
        "input_series": input_series(build_series(case.traffic)),
        "alert_rule_test": alert_tests,
        "promql_expr_test": exprs,
    }


def render_case(spec: Spec, case: ReplayCase, links: Links | str) -> str:
    return unit_test_file(
        list(RULE_FILES), spec.prometheus.interval, [case_test(spec, case, links)]
    )


def render_replay_tests(spec: Spec, links: Links | str) -> dict[str, str]:
    """{file name: YAML}, for the tests/ folder below the rule files."""
    return {case.file: render_case(spec, case, links) for case in cases(spec)}
