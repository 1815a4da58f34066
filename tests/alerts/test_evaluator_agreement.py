"""The in-process evaluator and Prometheus (promtool) agree, evaluation by evaluation.

For each baseline signal and each design case, and for every realistic replay case (several
replicas, rollouts, restarts, refusals, whole-number counts over the service's buckets),
identical raw series go to the evaluator through a prometheus_client registry and to promtool
as input_series. The evaluator's firing alerts at every evaluation become promtool's
exp_alerts (for every alert it ever reported), and the number of evaluations each alert series
spent pending and firing becomes the expected `count_over_time(ALERTS[...])` over the whole
run (for every alert), so promtool passing means both reached the same verdicts at every step,
pending time included, fleet baselines and minimum events too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.evaluator import AlertState, Evaluator
from alerts.promql_text import duration
from alerts.promtool_format import (
    alert_test,
    expected_alert,
    expr_test,
    input_series,
    unit_test_file,
)
from alerts.raw_series import Series, build_series
from alerts.replay import replay
from alerts.replay_cases import ReplayCase, cases
from alerts.rules import baselines_group
from alerts.spec import SPEC, BaselineSignal
from alerts.synthetic import STEP_S, build, scenarios
from alerts.values import load_values

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "generated" / "baselines.rules.yml"
CASES = ("steady", "step_2x", "step_1_4x", "noise_30pct", "low_traffic", "cold_start")
SHOULD_FIRE = {"step_2x", "cold_start"}
EVAL_S = int(SPEC.prometheus.interval)


def _by_alert_and_basis() -> dict[tuple[str, str], dict[str, Any]]:
    rules = baselines_group(SPEC, SPEC.prometheus, load_values().runbook_url_base)["rules"]
    return {(r["alert"], r["labels"]["basis"]): r for r in rules if "alert" in r}


def _checks(verdicts: list[tuple[int, list[AlertState]]], alerts: set[str]) -> list[dict]:
    """One alert test per evaluation for each of `alerts` the evaluator ever reported: exactly
    its firing alerts then."""
    rules = _by_alert_and_basis()
    seen = {s.alert for _, states in verdicts for s in states} & alerts
    return [
        alert_test(
            t,
            alert,
            [
                expected_alert(rules[(s.alert, s.basis)], dict(s.labels))
                for s in states
                if s.firing and s.alert == alert
            ],
        )
        for t, states in verdicts
        for alert in sorted(seen)
    ]


def _every_state(verdicts: list[tuple[int, list[AlertState]]], alerts: set[str]) -> dict:
    """How many evaluations each alert series spent pending and firing, as Prometheus' ALERTS
    counts them over the whole run: an alert the evaluator never reported must never have
    been pending in Prometheus either."""
    rules = _by_alert_and_basis()
    counts: dict[tuple[tuple[str, str], ...], int] = {}
    for _, states in verdicts:
        for s in states:
            if s.alert in alerts:
                labels = {**dict(s.labels), **rules[(s.alert, s.basis)]["labels"]}
                key = tuple(sorted({**labels, "alertname": s.alert, "alertstate": s.state}.items()))
                counts[key] = counts.get(key, 0) + 1
    end = verdicts[-1][0]
    names = "|".join(sorted(alerts))
    return expr_test(
        end,
        f'count_over_time(ALERTS{{alertname=~"{names}"}}[{duration(end)}])',
        [(dict(key), float(n)) for key, n in sorted(counts.items())],
    )


def _promtool(tests: list[dict], tmp_path: Path) -> None:
    path = tmp_path / "agreement.test.yml"
    path.write_text(unit_test_file([str(RULES)], SPEC.prometheus.interval, tests))
    result = subprocess.run(
        ["promtool", "test", "rules", path.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[:6000]


def _evaluations(series: Series, times: range) -> list[tuple[int, list[AlertState]]]:
    """The evaluator's active alerts at each evaluation (every 30 s sample)."""
    return [(v.t, v.states) for v in replay(SPEC, series, times) if v.t % EVAL_S == 0]


@pytest.mark.parametrize("signal", SPEC.baselines, ids=lambda s: s.alert)
def test_evaluator_agrees_with_promtool(signal: BaselineSignal, tmp_path: Path) -> None:
    tests = []
    for name in CASES:
        scenario = scenarios(signal)[name]
        series = build(signal, scenario)
        verdicts = _evaluations(series, range(0, scenario.duration_s + 1, STEP_S))
        fired = any(s.firing and s.alert == signal.alert for _, states in verdicts for s in states)
        assert fired == (name in SHOULD_FIRE), f"{name}: evaluator fired={fired}"
        tests.append(
            {
                "name": f"{signal.alert} {name}",
                "interval": f"{STEP_S}s",
                "input_series": input_series(series),
                "alert_rule_test": _checks(verdicts, {signal.alert}),
                "promql_expr_test": [_every_state(verdicts, {signal.alert})],
            }
        )
    _promtool(tests, tmp_path)
    step_2x = yaml.safe_load((tmp_path / "agreement.test.yml").read_text())["tests"][1]
    assert step_2x["alert_rule_test"] and step_2x["promql_expr_test"][0]["exp_samples"]


@pytest.mark.parametrize("case", cases(SPEC), ids=lambda c: c.name)
def test_evaluator_agrees_with_promtool_on_replayed_traffic(
    case: ReplayCase, tmp_path: Path
) -> None:
    """Every baseline alert, every 30 s, on the realistic replay cases."""
    series = build_series(case.traffic)
    verdicts = _evaluations(series, case.traffic.times)
    alerts = {s.alert for s in SPEC.baselines}
    _promtool(
        [
            {
                "name": case.title,
                "interval": f"{case.traffic.step_s}s",
                "input_series": input_series(series),
                "alert_rule_test": _checks(verdicts, alerts),
                "promql_expr_test": [_every_state(verdicts, alerts)],
            }
        ],
        tmp_path,
    )


def test_in_process_timing_on_a_real_histogram_step() -> None:
    """The in-process timing over live prometheus_client metrics: a 3x TTFT step fires at the
    3rd one-second evaluation above 1.5x; the steady hour before it never does. One process is
    its own fleet: the alert is reported once, `basis: baseline`."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from alerts.exposition import LATENCY_BUCKETS

    registry = CollectorRegistry()
    ttft = Histogram(
        "inferwatch_time_to_first_token_seconds", "TTFT", ["model", "priority"],
        buckets=LATENCY_BUCKETS, registry=registry,
    )  # fmt: skip
    requests = Counter(
        "inferwatch_requests_total", "requests", ["model", "priority", "outcome"],
        registry=registry,
    )  # fmt: skip
    timing = SPEC.in_process
    evaluator = Evaluator(SPEC, registry, clock=lambda: 0.0)
    warmup = int(timing.baseline_offset + timing.baseline_window)
    fired_at = None
    for t in range(warmup + 60):
        latency = 0.3 if t < warmup else 1.2  # (0.28, 0.4] -> (1.0, 1.4]
        for _ in range(5):
            ttft.labels("m1", "standard").observe(latency)
            requests.labels("m1", "standard", "completed").inc()
        states = evaluator.step(float(t))
        firing = [s for s in states if s.firing]
        if t < warmup:
            assert not states, (t, states)
        elif firing and fired_at is None:
            fired_at = t
            (state,) = firing
            assert state.alert == "InferwatchTimeToFirstTokenAboveBaseline"
            assert (state.model, state.basis) == ("m1", "baseline")
            assert state.action == "shed_low_priority"
            assert state.value > SPEC.breach_factor * state.baseline
    assert fired_at is not None
    # First evaluation above 1.5x is within a few seconds of the step (3% of a 30 s window);
    # firing comes two evaluations after that.
    assert warmup + 2 <= fired_at <= warmup + 4
