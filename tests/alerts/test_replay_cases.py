"""Each of the review's seven findings, shown to fail where the flaw is put back.

The replay cases (alerts/replay_cases.py, committed as alerts/generated/tests/replay_*.test.yml)
state what the rules must do with realistic raw series. Here each finding's case runs twice
through promtool: against the rules of today's spec, where it passes, and against the rules,
buckets, thresholds or stated delay that had the flaw, where promtool must report the case's
own alert as the failure. A case that passed both ways would prove nothing.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts import detection_delays
from alerts.exposition import DURATION
from alerts.populations import ARRIVALS, ERROR_RATIO
from alerts.promtool_format import unit_test_file
from alerts.replay_cases import ReplayCase, cases, render_case
from alerts.rules import dump, render_rules
from alerts.spec import SPEC, THRESHOLDS, Spec, build_spec

BASE = "runbooks.md"
# The layout request durations had before (steps of 2x to 5x).
OLD_DURATION_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0,
    60.0, 120.0, 180.0, 300.0,
)  # fmt: skip
OLD_LATENCY_GUARD = (
    "histogram_quantile(0.99, sum by (instance, job, model, le) "
    f"(rate({DURATION}_bucket[5m]))) > 1.5"
)
RuleEdit = Callable[[dict[str, str]], dict[str, str]]


def _case(name: str) -> ReplayCase:
    return next(c for c in cases(SPEC) if c.name == name)


def _promtool(spec: Spec, test_file: str, tmp: Path, edit: RuleEdit | None = None) -> str:
    """Run one test file against `spec`'s rule files (edited by `edit`); promtool's output,
    empty when it passed."""
    rules = render_rules(spec, spec.prometheus, BASE)
    (tmp / "tests").mkdir(parents=True, exist_ok=True)
    for name, text in (edit(rules) if edit else rules).items():
        (tmp / name).write_text(text)
    (tmp / "tests" / "case.test.yml").write_text(test_file)
    result = subprocess.run(
        ["promtool", "test", "rules", "case.test.yml"],
        cwd=tmp / "tests", capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return "" if result.returncode == 0 else result.stdout + result.stderr


def _without_fleet(rules: dict[str, str]) -> dict[str, str]:
    """The baseline rules as they were: each replica against its own baseline only."""
    document = yaml.safe_load(rules["baselines.rules.yml"])
    kept = []
    for rule in document["groups"][0]["rules"]:
        if rule.get("record", "").startswith("job_model:"):
            continue
        if rule.get("labels", {}).get("basis") == "fleet":
            continue
        rule["expr"] = re.sub(r" unless on\(job, model\) job_model:\S+", "", rule["expr"])
        kept.append(rule)
    document["groups"][0]["rules"] = kept
    return {**rules, "baselines.rules.yml": dump(document)}


def _with_guard(spec: Spec, name: str, **changes: Any) -> Spec:
    guards = tuple(dataclasses.replace(g, **changes) if g.name == name else g for g in spec.guards)
    return dataclasses.replace(spec, guards=guards)


def _traffic_with_layout(case: ReplayCase, family: str, bounds: tuple[float, ...]) -> ReplayCase:
    traffic = dataclasses.replace(case.traffic, layouts=((family, bounds),))
    return dataclasses.replace(case, traffic=traffic)


def _old_claim(spec: Spec) -> str:
    """The runbook's old claim, under realistic spreads: a 2x TTFT step fires 1m30s after it
    (above 1.5x at the first evaluation after the step)."""
    (signal,) = [s for s in spec.baselines if s.alert.startswith("InferwatchTimeToFirstToken")]
    measured = detection_delays.measured_delays(spec)[spec.baselines.index(signal)]
    claimed = dataclasses.replace(measured, on_evaluation=(30, 90), between=(15, 75))
    tests = detection_delays.delay_tests(spec, signal, claimed, BASE)
    return unit_test_file(["../baselines.rules.yml"], spec.prometheus.interval, tests)


@dataclasses.dataclass(frozen=True)
class Flawed:
    finding: int
    case: str
    why: str
    alert: str  # the alert promtool must name in its failure
    spec: Spec = SPEC
    edit: RuleEdit | None = None
    traffic: Callable[[ReplayCase], ReplayCase] | None = None


FLAWED = (
    Flawed(1, "single_failure_at_low_traffic", "no minimum of bad events",
           "InferwatchErrorRatioAboveBaseline", spec=build_spec(THRESHOLDS, min_bad_events=0)),
    Flawed(2, "refused_prompts_do_not_open_the_gate",
           "the gate counts every outcome, no minimum of observations",
           "InferwatchTimeToFirstTokenAboveBaseline",
           spec=build_spec(THRESHOLDS, traffic=ARRIVALS, min_tail_events=0)),
    Flawed(3, "refusals_do_not_dilute_failures", "refusals in the error ratio's denominator",
           "InferwatchErrorRatioHigh",
           spec=build_spec(THRESHOLDS, error_ratio=dataclasses.replace(ERROR_RATIO, among=()))),
    Flawed(4, "fine_buckets_see_a_1_3x_step_as_1_3x", "the old request-duration buckets",
           "InferwatchRequestLatencyAboveBaseline",
           traffic=lambda c: _traffic_with_layout(c, DURATION, OLD_DURATION_BUCKETS)),
    Flawed(4, "thresholds_on_bucket_bounds_read_true", "a threshold inside a bucket (0.3 s)",
           "InferwatchRequestLatencyHigh",
           spec=build_spec(dataclasses.replace(
               THRESHOLDS, inter_token_latency_p99_high_seconds=0.3
           ))),
    Flawed(5, "rollout_of_a_regression_fires_on_the_new_pods", "per-replica baselines only",
           "InferwatchTimeToFirstTokenAboveBaseline", edit=_without_fleet),
    Flawed(7, "llm_durations_are_no_cold_start", "the 10 s cold-start threshold",
           "InferwatchRequestLatencyAboveBaseline",
           spec=build_spec(dataclasses.replace(
               THRESHOLDS, request_latency_cold_start_seconds=10.0
           ))),
    Flawed(7, "llm_durations_are_no_cold_start", "the p99 request duration > 1.5 s guard",
           "InferwatchRequestLatencyHigh",
           spec=_with_guard(SPEC, "InferwatchRequestLatencyHigh", expr=OLD_LATENCY_GUARD)),
)  # fmt: skip


def test_every_finding_has_a_case_and_a_flawed_variant() -> None:
    findings = {c.finding for c in cases(SPEC) if c.finding is not None} | {6}  # 6: delays
    assert findings == set(range(1, 8))
    assert {f.finding for f in FLAWED} | {6} == findings
    assert {f.case for f in FLAWED} == {c.name for c in cases(SPEC) if c.finding is not None}


@pytest.mark.parametrize("flawed", FLAWED, ids=lambda f: f"{f.finding}-{f.case}-{f.why}")
def test_the_case_passes_here_and_fails_with_the_flaw(flawed: Flawed, tmp_path: Path) -> None:
    case = _case(flawed.case)
    assert _promtool(SPEC, render_case(SPEC, case, BASE), tmp_path / "today") == ""
    bad_case = flawed.traffic(case) if flawed.traffic else case
    failure = _promtool(
        flawed.spec, render_case(flawed.spec, bad_case, BASE), tmp_path / "flawed", flawed.edit
    )
    assert "FAILED" in failure, f"{flawed.case} passed with {flawed.why}"
    assert flawed.alert in failure, failure[-3000:]


def test_6_the_old_detection_delay_claim_fails_under_realistic_spreads(tmp_path: Path) -> None:
    failure = _promtool(SPEC, _old_claim(SPEC), tmp_path)
    assert "FAILED" in failure and "InferwatchTimeToFirstTokenAboveBaseline" in failure
