"""The committed promtool tests (alerts/generated/tests/) as cases stated from the rule design.

Expectations come from the rule design, not from running the rules: "pending at the first
evaluation above 1.5x, firing at the third", "silent at 1.4x", and so on. The synthetic inputs are
built so that the design fixes those evaluation times (see alerts/synthetic.py). Every baseline
signal of the spec gets its own file, named after the signal.
"""

from __future__ import annotations

from typing import Any

from alerts.annotations import Links
from alerts.baseline import ON, BaselineRule, traffic_record
from alerts.exposition import HTTP_RESPONSES, REJECTIONS
from alerts.promql_text import duration
from alerts.promtool_format import (
    alert_test,
    expected_alert,
    expr_test,
    input_series,
    series_selector,
    series_values,
    unit_test_file,
)
from alerts.rules import BURN_ALERT, baselines_group, guards_group, slos_group
from alerts.spec import REQUESTS, SERVICE_JOB, TTFT, BaselineSignal, Spec
from alerts.synthetic import STEP_S, TARGET, build, scenarios

STEP_AT = 5400  # the baseline exists from 45 min; steps come at 1h30m
RULES_DIR = ".."  # the test files sit in tests/ below the rule files


def _rule(rules: list[dict], alert: str, **labels: str) -> dict:
    return next(
        r for r in rules
        if r.get("alert") == alert and all(r["labels"].get(k) == v for k, v in labels.items())
    )  # fmt: skip


def _alerts_seen(alert: str, window_s: float) -> str:
    """Every pending or firing sample of the alert in the window; no series means silence."""
    return f'count_over_time(ALERTS{{alertname="{alert}"}}[{duration(window_s)}])'


def _test(name: str, series: dict, alerts: list, exprs: list) -> dict[str, Any]:
    return {
        "name": name,
        "interval": duration(STEP_S),
        "input_series": input_series(series),
        "alert_rule_test": alerts,
        "promql_expr_test": exprs,
    }


def baseline_test_file(signal: BaselineSignal) -> str:
    return f"baseline_{signal.short_name}.test.yml"


def baseline_tests(spec: Spec, signal: BaselineSignal, links: Links | str) -> str:
    timing = spec.prometheus
    rules = baselines_group(spec, timing, links)["rules"]
    dynamic = _rule(rules, signal.alert, basis="baseline")
    fleet = _rule(rules, signal.alert, basis="fleet")
    cold = _rule(rules, signal.alert, basis="cold_start")
    target = dict(TARGET)
    rule = BaselineRule(spec, signal, timing)
    sli, base, name = rule.sli_record, rule.baseline_record, signal.alert
    ratio = f"{sli} / {ON} {base}"
    cases = scenarios(signal, STEP_AT)
    t, i = STEP_AT, timing.interval
    state = {"alertname": name, **target, **dynamic["labels"]}
    fleet_state = {**state, **fleet["labels"]}
    # One replica is its own fleet: its fleet baseline is its own, so both bases fire.
    breach = [expected_alert(dynamic, target), expected_alert(fleet, target)]
    end_14 = cases["step_1_4x"].duration_s
    return unit_test_file(
        [f"{RULES_DIR}/baselines.rules.yml"],
        timing.interval,
        [
            _test(
                f"{name}: a step fires at the 3rd evaluation above 1.5x, not at the 2nd",
                build(signal, cases["step"]),
                [
                    alert_test(t, name, []),
                    alert_test(t + 2 * i, name, []),
                    alert_test(t + 3 * i, name, breach),
                    alert_test(t + 20 * i, name, breach),
                ],
                [
                    expr_test(t, _alerts_seen(name, t), []),  # silent through warm-up
                    expr_test(t, f"{ratio} > bool 1.5", [(target, 0)]),
                    expr_test(t + i, f"{ratio} > bool 1.5", [(target, 1)]),  # first above
                    expr_test(
                        t + 3 * i,
                        _alerts_seen(name, 3 * i),
                        [
                            ({**state, "alertstate": "firing"}, 1),
                            ({**state, "alertstate": "pending"}, 2),
                            ({**fleet_state, "alertstate": "firing"}, 1),
                            ({**fleet_state, "alertstate": "pending"}, 2),
                        ],
                    ),  # fmt: skip
                ],
            ),
            _test(
                f"{name}: silent at 1.4x",
                build(signal, cases["step_1_4x"]),
                [alert_test(t + 20 * i, name, []), alert_test(end_14, name, [])],
                [
                    expr_test(t + 20 * i, f"{ratio} > bool 1.3", [(target, 1)]),  # it did move
                    expr_test(end_14, _alerts_seen(name, end_14), []),
                ],
            ),
            _test(
                f"{name}: silent over 6 hours of +-30% noise",
                build(signal, cases["noise_30pct"]),
                [alert_test(cases["noise_30pct"].duration_s, name, [])],
                [
                    expr_test(cases["noise_30pct"].duration_s, f"{base} > bool 0", [(target, 1)]),
                    expr_test(cases["noise_30pct"].duration_s, _alerts_seen(name, 6 * 3600), []),
                ],
            ),
            _test(
                f"{name}: silent below the minimum traffic, even above the cold-start threshold",
                build(signal, cases["low_traffic"]),
                [alert_test(cases["low_traffic"].duration_s, name, [])],
                [
                    expr_test(
                        3600,
                        f"{traffic_record(spec, timing)} < bool {spec.min_traffic_rps}",
                        [(target, 1)],
                    ),
                    expr_test(3600, sli, []),
                    expr_test(
                        cases["low_traffic"].duration_s,
                        _alerts_seen(name, cases["low_traffic"].duration_s),
                        [],
                    ),
                ],
            ),
            _test(
                f"{name}: the cold-start threshold fires while no baseline exists",
                build(signal, cases["cold_start"]),
                [
                    alert_test(2 * i, name, []),
                    alert_test(3 * i, name, [expected_alert(cold, target)]),
                    alert_test(
                        cases["cold_start"].duration_s, name, [expected_alert(cold, target)]
                    ),
                ],
                [expr_test(3 * i, f"absent({base})", [({}, 1)])],
            ),
        ],
    )


def _counter(name: str, labels: dict[str, str], per_minute: list[tuple[int, float]]) -> dict:
    """A counter growing by `rate` per minute for `minutes`, for each (minutes, rate) phase."""
    values, total = [0.0], 0.0
    for minutes, rate in per_minute:
        for _ in range(minutes):
            total += rate
            values.append(total)
    return {"series": series_selector(name, tuple(sorted(labels.items()))),
            "values": series_values(values)}  # fmt: skip


def slo_tests(spec: Spec, links: Links | str) -> str:
    timing = spec.prometheus
    rules = slos_group(spec, timing, links)["rules"]
    svc = {"job": SERVICE_JOB, "model": "m1"}
    base = {"instance": "127.0.0.1:8000", **svc, "priority": "standard"}

    def burns(slo: str, *longs: str) -> list[dict]:
        return [
            expected_alert(_rule(rules, BURN_ALERT, slo=slo, long_window=w), svc) for w in longs
        ]

    # Where the bad requests are counted: failures, a refusal by reason, or a 5xx answer the
    # HTTP layer gave before the engine (no model label: the instance's model is joined).
    failed = (REQUESTS, {**base, "outcome": "failed"})
    http = {"instance": base["instance"], "job": SERVICE_JOB, "route": "/v1/completions"}

    def refused(reason: str) -> tuple[str, dict[str, str]]:
        return (REJECTIONS, {**base, "reason": reason})

    def availability(
        name: str,
        phases: list[tuple[int, float]],
        at: int,
        fired: list[str],
        bad: tuple[str, dict[str, str]] = failed,
    ) -> dict[str, Any]:
        n = 10000  # requests per minute
        good = [(m, n - bad) for m, bad in phases]
        series = [
            _counter(REQUESTS, {**base, "outcome": "completed"}, good),
            _counter(*bad, phases),
        ]
        return {
            "name": name,
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [alert_test(at, BURN_ALERT, burns("availability", *fired))],
        }

    minutes = 15
    ttft_series = [
        _counter(f"{TTFT}_bucket", {**base, "le": "1.0"}, [(minutes, 8000)]),  # Prometheus 3 style
        _counter(f"{TTFT}_bucket", {**base, "le": "+Inf"}, [(minutes, 10000)]),
        _counter(f"{TTFT}_count", base, [(minutes, 10000)]),
    ]
    tests = [
        availability("2% errors (20x burn): both pages and the ticket", [(15, 200)], 600,
                     ["1h", "6h", "3d"]),
        availability("0.8% errors (8x): the 6h page and the ticket", [(15, 80)], 600,
                     ["6h", "3d"]),
        availability("0.2% errors (2x): only the 3d ticket", [(15, 20)], 600, ["3d"]),
        availability("0.05% errors (0.5x): nothing", [(15, 5)], 600, []),
        availability("2% refused at the concurrency limit (20x): the service's doing, pages",
                     [(15, 200)], 600, ["1h", "6h", "3d"], refused("concurrency_limit")),
        availability("2% cut at their class deadline (20x): pages", [(15, 200)], 600,
                     ["1h", "6h", "3d"], refused("deadline_exceeded")),
        availability("20% over their key's rate: the client's doing, nothing", [(15, 2000)],
                     600, [], refused("rate_limited")),
        availability("20% without a valid API key: the client's doing, nothing", [(15, 2000)],
                     600, [], refused("invalid_api_key")),
        availability("2% answered 503 before the engine (engine_unavailable, no model label): "
                     "pages", [(15, 200)], 600, ["1h", "6h", "3d"],
                     (HTTP_RESPONSES, {**http, "status_class": "5xx",
                                       "reason": "engine_unavailable"})),
        availability("20% answered 429 (rate limit) as HTTP counts it: no pre-engine failure",
                     [(15, 2000)], 600, [],
                     (HTTP_RESPONSES, {**http, "status_class": "4xx", "reason": "rate_limited"})),
        availability(
            "errors stopped 10 minutes ago: the 5m window resets the 1h page", [(70, 200), (10, 0)],
            80 * 60, ["6h", "3d"],
        ),
        availability(
            "a 5-minute blip of 2% errors (20x) after hours of none: nothing",
            [(400, 0), (5, 200), (1, 0)], 406 * 60, [],
        ),
        {
            "name": "20% of first tokens slower than 1 s (20x), bucket le=\"1.0\": TTFT burns",
            "interval": "1m",
            "input_series": ttft_series,
            "alert_rule_test": [
                alert_test(600, BURN_ALERT, burns("ttft", "1h", "6h", "3d"))
            ],
        },
    ]  # fmt: skip
    return unit_test_file([f"{RULES_DIR}/slos.rules.yml"], timing.interval, tests)


def guard_tests(spec: Spec, links: Links | str) -> str:
    timing = spec.prometheus
    rules = guards_group(spec, timing, links)["rules"]
    host = {"instance": "127.0.0.1:8000", "job": SERVICE_JOB}
    gpu = {**host, "gpu": "0", "uuid": "GPU-1"}

    def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
        return {"series": series_selector(name, tuple(sorted(labels.items()))), "values": values}

    def fires(alert: str, at: float, labels: dict[str, str], before: float) -> list[dict]:
        return [
            alert_test(before, alert, []),
            alert_test(at, alert, [expected_alert(_rule(rules, alert), labels)]),
        ]

    tests = [
        {
            "name": "Watchdog fires at the first evaluation",
            "interval": "30s",
            "input_series": [],
            "alert_rule_test": [
                alert_test(
                    0,
                    "InferwatchWatchdog",
                    [expected_alert(_rule(rules, "InferwatchWatchdog"), {})],
                ),
            ],  # fmt: skip
        },
        {
            "name": "GPU above 90% for 60 s asks to shed low priority",
            "interval": "30s",
            "input_series": [series("inferwatch_gpu_utilization_ratio", gpu, "0.95x10")],
            "alert_rule_test": fires("InferwatchGPUSaturated", 60, gpu, 30),
        },
        {
            "name": "service down: up == 0, and no target at all",
            "interval": "30s",
            "input_series": [series("up", host, "0x10")],
            "alert_rule_test": fires("InferwatchServiceDown", 60, host, 30),
        },
        {
            "name": "service down: no up series at all",
            "interval": "30s",
            "input_series": [],
            "alert_rule_test": fires("InferwatchServiceDown", 60, {"job": SERVICE_JOB}, 30),
        },
        {
            "name": "GPU down only where a GPU worked before",
            "interval": "30s",
            "input_series": [
                series("inferwatch_gpu_up", host, "1x20 0x10"),
                series("inferwatch_gpu_up", {**host, "instance": "cpu-only:8000"}, "0x30"),
            ],
            "alert_rule_test": fires("InferwatchGPUDown", 690, host, 660),
        },
        {
            "name": "degradation active for 30 minutes",
            "interval": "1m",
            "input_series": [
                series("inferwatch_degradation_level", {**host, "model": "m1"}, "1x40")
            ],
            "alert_rule_test": fires(
                "InferwatchDegradationActive", 1800, {**host, "model": "m1"}, 1770
            ),
        },
    ]
    return unit_test_file([f"{RULES_DIR}/guards.rules.yml"], timing.interval, tests)


def render_promtool_tests(spec: Spec, links: Links | str) -> dict[str, str]:
    """{file name: YAML}, for the tests/ folder below the rule files."""
    files = {
        baseline_test_file(signal): baseline_tests(spec, signal, links) for signal in spec.baselines
    }
    files["slo_burn.test.yml"] = slo_tests(spec, links)
    files["guards.test.yml"] = guard_tests(spec, links)
    return files
