"""The dynamic-baseline rule of one signal, written once as PromQL and once as the same Python.

Per signal, in one rule group and in this order: (1) the SLI, only where the model has traffic;
(2) its lagged, robust, floored baseline; (3) two alerts, one above `breach_factor` x the baseline
and one, while no baseline exists, above the cold-start threshold. rules.py renders the PromQL
half into generated/baselines.rules.yml and the in-process evaluator runs the Python half; each
step's two halves sit together here (as the SLIs' do in sli.py), so a change to one is reviewed
next to the other, and tests/alerts/test_evaluator_agreement.py checks they still agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from alerts.promql_math import quantile
from alerts.promql_text import duration, number
from alerts.sli import GroupKey
from alerts.spec import PER_MODEL, BaselineSignal, Severity, Spec, Timing

ON = f"on({', '.join(PER_MODEL)})"
SEVERITY = Severity.WARNING  # an anomaly alone never pages
BASELINE, COLD_START = "baseline", "cold_start"  # the `basis` label


def traffic_record(spec: Spec, timing: Timing) -> str:
    """The request-rate recording rule every signal is gated on."""
    return spec.traffic.record_name(duration(timing.rate_window))


@dataclass(frozen=True)
class BaselineRule:
    """One signal's baseline rule under one timing (Prometheus' or the in-process one)."""

    spec: Spec
    signal: BaselineSignal
    timing: Timing

    @property
    def sli_record(self) -> str:
        return self.signal.sli.record_name(duration(self.timing.rate_window))

    @property
    def baseline_record(self) -> str:
        return f"{self.sli_record}_baseline"

    @property
    def for_s(self) -> float:
        return self.spec.for_s(self.timing)

    def labels(self, basis: str) -> dict[str, str]:
        return {"severity": SEVERITY.value, "action": self.signal.action.value, "basis": basis}

    # (1) The SLI where the model serves at least the minimum traffic.

    def sli_expr(self) -> str:
        # NaN (no observations) is dropped by `>= 0`; an idle model has no SLI at all.
        return (
            f"({self.signal.sli.promql(duration(self.timing.rate_window))} >= 0) and {ON} "
            f"({traffic_record(self.spec, self.timing)} >= {number(self.spec.min_traffic_rps)})"
        )

    def gate(
        self, sli: dict[GroupKey, float], traffic: dict[GroupKey, float]
    ) -> dict[GroupKey, float]:
        """`sli_expr` over computed SLI and traffic values (`>= 0` also drops NaN)."""
        return {
            key: value
            for key, value in sli.items()
            if value >= 0 and traffic.get(key, -math.inf) >= self.spec.min_traffic_rps
        }

    # (2) The baseline: a lagged median (the anomaly does not raise its own bar), floored (a
    # near-zero baseline does not make every blip 150%), once enough samples exist.

    def _lagged(self) -> str:
        window, offset = (
            duration(self.timing.baseline_window),
            duration(self.timing.baseline_offset),
        )
        return f"{self.sli_record}[{window}] offset {offset}"

    def baseline_expr(self) -> str:
        lagged = self._lagged()
        return (
            f"clamp_min(quantile_over_time({number(self.spec.baseline_quantile)}, {lagged}), "
            f"{number(self.signal.floor)}) and {ON} "
            f"(count_over_time({lagged}) >= {self.timing.min_baseline_samples})"
        )

    def lagged_range_ms(self, t_ms: int) -> tuple[int, int]:
        """The range `sli[baseline_window] offset baseline_offset` reads at t, both ends
        included as in Prometheus 2.x."""
        end = t_ms - round(self.timing.baseline_offset * 1000)
        return end - round(self.timing.baseline_window * 1000), end

    def baseline(self, history: Iterable[tuple[int, float]], t_ms: int) -> float | None:
        """`baseline_expr` over one series' (t_ms, SLI) history; None where it is absent."""
        start, end = self.lagged_range_ms(t_ms)
        values = [value for t, value in history if start <= t <= end]
        if len(values) < self.timing.min_baseline_samples:
            return None
        return max(self.signal.floor, quantile(self.spec.baseline_quantile, values))

    # (3) The alerts; with `for_s` each fires at the `consecutive`-th true evaluation in a row.

    def breach_expr(self) -> str:
        factor = number(self.spec.breach_factor)
        return f"{self.sli_record} > {ON} ({factor} * {self.baseline_record})"

    def cold_start_expr(self) -> str:
        threshold = number(self.signal.cold_start_threshold)
        return f"{self.sli_record} > {threshold} unless {ON} {self.baseline_record}"

    def basis(self, value: float, baseline: float | None) -> str | None:
        """Which of the two alert expressions is true for this SLI value, if either."""
        if baseline is not None:
            return BASELINE if value > self.spec.breach_factor * baseline else None
        return COLD_START if value > self.signal.cold_start_threshold else None


def baseline_rules(spec: Spec, timing: Timing) -> tuple[BaselineRule, ...]:
    return tuple(BaselineRule(spec, signal, timing) for signal in spec.baselines)
