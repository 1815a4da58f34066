"""The in-process evaluator and Prometheus (promtool) agree, evaluation by evaluation.

For each baseline signal and each case, identical raw series (histogram buckets, counters,
gauges) go to the evaluator through a prometheus_client registry and to promtool as
input_series; the evaluator's firing alerts at every evaluation become promtool's exp_alerts, so
promtool passing means both reached the same verdicts at every step, pending time included.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from alerts.evaluator import Evaluator
from alerts.promtool_format import alert_test, expected_alert, input_series, unit_test_file
from alerts.rules import baselines_group
from alerts.spec import SPEC, BaselineSignal
from alerts.synthetic import STEP_S, Series, build, scenarios
from alerts.values import load_values

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "generated" / "baselines.rules.yml"
CASES = ("steady", "step_2x", "step_1_4x", "noise_30pct", "low_traffic", "cold_start")
SHOULD_FIRE = {"step_2x", "cold_start"}


class SyntheticCollector:
    """Serves the synthetic sample of the current step, as the service's registry would."""

    def __init__(self, series: Series) -> None:
        self.series = series
        self.index = 0

    def collect(self) -> Iterator[Metric]:
        metric = Metric("synthetic", "synthetic series", "unknown")
        for name, by_labels in self.series.items():
            for labels, values in by_labels.items():
                metric.add_sample(name, dict(labels), values[self.index])
        yield metric


def _verdicts(signal: BaselineSignal, series: Series, duration_s: int) -> list[tuple[int, list]]:
    collector = SyntheticCollector(series)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    evaluator = Evaluator(SPEC, registry, clock=lambda: 0.0, timing=SPEC.prometheus)
    out = []
    for index, t in enumerate(range(0, duration_s + 1, STEP_S)):
        collector.index = index
        states = evaluator.step(float(t))
        out.append((t, [s for s in states if s.firing and s.alert == signal.alert]))
    return out


@pytest.mark.parametrize("signal", SPEC.baselines, ids=lambda s: s.alert)
def test_evaluator_agrees_with_promtool(signal: BaselineSignal, tmp_path: Path) -> None:
    rules = baselines_group(SPEC, SPEC.prometheus, load_values().runbook_url_base)["rules"]
    by_basis = {r["labels"]["basis"]: r for r in rules if r.get("alert") == signal.alert}
    tests = []
    for name in CASES:
        scenario = scenarios(signal)[name]
        series = build(signal, scenario)
        verdicts = _verdicts(signal, series, scenario.duration_s)
        fired = any(states for _, states in verdicts)
        assert fired == (name in SHOULD_FIRE), f"{name}: evaluator fired={fired}"
        checks = [
            alert_test(
                t,
                signal.alert,
                [expected_alert(by_basis[s.basis], dict(s.labels)) for s in states],
            )
            for t, states in verdicts
        ]
        tests.append(
            {
                "name": f"{signal.alert} {name}",
                "interval": f"{STEP_S}s",
                "input_series": input_series(series),
                "alert_rule_test": checks,
            }
        )
    path = tmp_path / "agreement.test.yml"
    path.write_text(unit_test_file([str(RULES)], SPEC.prometheus.interval, tests))
    result = subprocess.run(
        ["promtool", "test", "rules", path.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[:6000]
    assert yaml.safe_load(path.read_text())["tests"][1]["alert_rule_test"]  # not vacuous


def test_in_process_timing_on_a_real_histogram_step() -> None:
    """The in-process timing over live prometheus_client metrics: a 3x TTFT step fires at the
    3rd one-second evaluation above 1.5x; the steady hour before it never does."""
    from prometheus_client import Counter, Histogram

    registry = CollectorRegistry()
    ttft = Histogram(
        "inferwatch_time_to_first_token_seconds", "TTFT", ["model", "priority"],
        buckets=(0.1, 0.2, 0.4, 0.8, 1.6, 3.2), registry=registry,
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
        latency = 0.3 if t < warmup else 1.2  # (0.2, 0.4] -> (0.8, 1.6]
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
