"""How long after a realistic 2x step each baseline alert fires: measured, stated, proven.

The rule fires at the 3rd evaluation above 1.5x its baseline, but first the SLI has to get
there: a 5 m rate window mixes old and new requests, and with realistic spreads (log-normal
latencies over the service's buckets, alerts/realistic.py) a 2x step needs more than one
scrape's worth of new requests to lift a p95 above 1.5x. Each delay is measured here by
replaying the step through the in-process evaluator under Prometheus' timing (whose verdicts
are promtool's, tests/alerts/test_evaluator_agreement.py), stated in the runbook, and proven by
promtool in alerts/generated/tests/detection_delays.test.yml: not firing one evaluation before
the stated delay, firing at it, for a step on an evaluation and one between two.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from alerts.annotations import Links
from alerts.exposition import SCRAPE_INTERVAL_S
from alerts.promql_text import duration
from alerts.promtool_format import alert_test, expected_alert, expr_test, input_series
from alerts.promtool_format import unit_test_file as _file
from alerts.raw_series import Load, Replica, Traffic, build_series, slower
from alerts.realistic import Realistic
from alerts.replay import replay
from alerts.rules import baselines_group
from alerts.sli import CounterRatio, GaugeSum, HistogramQuantile
from alerts.spec_types import SERVICE_JOB, BaselineSignal, Spec

STEP_AT = 3600  # on an evaluation; the baselines (own and fleet) exist from 45 minutes
AFTER_S = 900
TARGET = {"instance": "a:8000", "job": SERVICE_JOB, "model": "m1"}
FILE = "detection_delays.test.yml"


@dataclass(frozen=True)
class Delay:
    """A 2x step's delays: first evaluation above 1.5x and firing, in seconds after the step."""

    alert: str
    step: str  # what doubled
    on_evaluation: tuple[int, int]  # (above 1.5x, firing) for a step on an evaluation
    between: tuple[int, int]  # the same for a step half a scrape interval after one

    @property
    def worst(self) -> int:
        return max(self.on_evaluation[1], self.between[1])


def _loads(signal: BaselineSignal) -> tuple[Load, Load, str]:
    """(before, after, what doubled) of a realistic 2x step in this signal."""
    sli = signal.sli
    steady = Load(served_rps=20.0, failed=0.02, queue_depth=20)
    if isinstance(sli, HistogramQuantile):
        return steady, replace(steady, slowdown=slower(2.0, sli.metric)), "every latency x2"
    if isinstance(sli, CounterRatio):
        # 6 to 13 failures of 300 a scrape: an exact 2x would tie 1.5x at half the window, and
        # promtool's verdict on a tie depends on the order it sums series in.
        return steady, replace(steady, failed=13 / 300), "failed share 2% to 4.3%"
    if isinstance(sli, GaugeSum):
        return steady, replace(steady, queue_depth=40), "queue depth 20 to 40"
    raise TypeError(f"no realistic step for {type(sli).__name__}")


def traffic(signal: BaselineSignal, step_at: int) -> Traffic:
    before, after, _ = _loads(signal)
    histogram = isinstance(signal.sli, HistogramQuantile)
    return Traffic(
        replicas=(Replica(instance=TARGET["instance"], phases=((0, before), (step_at, after))),),
        duration_s=STEP_AT + AFTER_S,
        shape=Realistic(),
        step_s=SCRAPE_INTERVAL_S,
        families=(signal.sli.metric,) if histogram else (),  # type: ignore[attr-defined]
        gauges=isinstance(signal.sli, GaugeSum),
    )


def _measure(spec: Spec, signal: BaselineSignal, step_at: int) -> tuple[int, int]:
    """(first evaluation above the breach factor, firing) in seconds after the step."""
    t = traffic(signal, step_at)
    above = firing = None
    for verdict in replay(spec, build_series(t), t.times):
        for value, own, _ in verdict.slis.values():
            if own is not None and value == spec.breach_factor * own:
                # promtool sums series in an order of its own: a tie would make its verdict
                # (and so the test) depend on the last bit.
                raise ValueError(
                    f"{signal.alert}: the SLI ties {spec.breach_factor}x at {verdict.t}"
                )
        mine = [s for s in verdict.states if s.alert == signal.alert and s.basis == "baseline"]
        if verdict.t <= step_at or not mine:
            continue
        above = above if above is not None else round(mine[0].active_since)
        if mine[0].firing:
            firing = verdict.t
            break
    if above is None or firing is None:
        raise AssertionError(f"{signal.alert}: a realistic 2x step never fired")
    return above - step_at, firing - step_at


def measured_delays(spec: Spec) -> tuple[Delay, ...]:
    """Every baseline signal's delays, in the spec's order."""
    return tuple(_delay(replace(spec, baselines=(signal,))) for signal in spec.baselines)


@cache
def _delay(spec: Spec) -> Delay:
    """The delays of a spec's only signal (cached: a spec is immutable, and one signal's rule
    does not depend on the others')."""
    (signal,) = spec.baselines
    return Delay(
        alert=signal.alert,
        step=_loads(signal)[2],
        on_evaluation=_measure(spec, signal, STEP_AT),
        between=_measure(spec, signal, STEP_AT + SCRAPE_INTERVAL_S),
    )


def delay_of(spec: Spec, alert: str) -> int:
    """The stated delay of one alert: the later of a step on and between evaluations."""
    return next(d.worst for d in measured_delays(spec) if d.alert == alert)


def delay_tests(
    spec: Spec, signal: BaselineSignal, delay: Delay, base: Links | str
) -> list[dict[str, Any]]:
    """promtool tests of one signal's delays: not firing one evaluation before, firing at."""
    rules = baselines_group(spec, spec.prometheus, base)["rules"]
    by_basis = {r["labels"]["basis"]: r for r in rules if r.get("alert") == signal.alert}
    fired = [expected_alert(by_basis[b], TARGET) for b in ("baseline", "fleet")]
    sli = signal.sli.record_name(duration(spec.prometheus.rate_window))
    # The alert's own comparison: `sli / baseline > 1.5` can differ from it in the last bit.
    ratio = f"{sli} > bool on(instance, job, model) ({spec.breach_factor:g} * {sli}_baseline)"
    interval = spec.prometheus.interval
    out = []
    for step_at, (above, fire) in ((STEP_AT, delay.on_evaluation),
                                   (STEP_AT + SCRAPE_INTERVAL_S, delay.between)):  # fmt: skip
        t = traffic(signal, step_at)
        above_at, fire_at = step_at + above, step_at + fire
        out.append(
            {
                "name": f"{signal.alert}: a realistic step ({delay.step}) at "
                f"{duration(step_at)} fires {duration(fire)} after it, at the 3rd evaluation "
                "above 1.5x",
                "interval": duration(t.step_s),
                "input_series": input_series(build_series(t)),
                "alert_rule_test": [
                    alert_test(fire_at - interval, signal.alert, []),
                    alert_test(fire_at, signal.alert, fired),
                ],
                "promql_expr_test": [
                    expr_test(above_at - interval, ratio, [(TARGET, 0)]),
                    expr_test(above_at, ratio, [(TARGET, 1)]),
                ],
            }
        )
    return out


def render_delay_tests(spec: Spec, links: Links | str) -> dict[str, str]:
    """{file name: YAML}: every baseline alert's measured delays, proven by promtool."""
    tests = []
    for signal, delay in zip(spec.baselines, measured_delays(spec), strict=True):
        tests += delay_tests(spec, signal, delay, links)
    return {FILE: _file(["../baselines.rules.yml"], spec.prometheus.interval, tests)}
