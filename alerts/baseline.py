"""The dynamic-baseline rule of one signal, written once as PromQL and once as the same Python.

Per signal, in one rule group and in this order: (1) the SLI per replica and per fleet (every
replica of a job and model), each only where the window holds enough served requests and, for a
quantile, enough observations; (2) their lagged, robust, floored baselines; (3) three alerts: the
replica's SLI above `breach_factor` x its own baseline (`basis: baseline`), above that of its
fleet (`basis: fleet`: a new pod of a bad rollout has no baseline of its own, and the one it
builds is the regressed level), and, while neither baseline exists, above the cold-start
threshold. A ratio's alerts also need enough bad events in the window. rules.py renders the
PromQL half into generated/baselines.rules.yml and the in-process evaluator runs the Python
half; each step's two halves sit together here (as the SLIs' do in sli.py), so a change to one
is reviewed next to the other, and tests/alerts/test_evaluator_agreement.py checks they agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from alerts.promql_math import quantile
from alerts.promql_text import duration, number
from alerts.sli import SLI, GroupKey
from alerts.spec_types import PER_MODEL, BaselineSignal, Severity, Spec, Timing

ON = f"on({', '.join(PER_MODEL)})"
SEVERITY = Severity.WARNING  # an anomaly alone never pages
BASELINE, FLEET, COLD_START = "baseline", "fleet", "cold_start"  # the `basis` label
FLEET_LEVEL = "job_model"  # the first part of a fleet's record names


def _window(timing: Timing) -> str:
    return duration(timing.rate_window)


def traffic_record(spec: Spec, timing: Timing) -> str:
    """Served requests per second per replica: the gate every baseline SLI is behind."""
    return spec.traffic.record_name(_window(timing))


def fleet_traffic(spec: Spec) -> SLI:
    return spec.traffic.fleet(spec.fleet_by, FLEET_LEVEL)


def arrivals_record(spec: Spec, timing: Timing) -> str:
    """Every request that ended, refused or not: the denominator of the refusal ratio."""
    return spec.arrivals.record_name(_window(timing))


def fleet_key(key: GroupKey, fleet_by: tuple[str, ...]) -> GroupKey:
    """The fleet a replica's series belongs to: its labels less `instance`."""
    return tuple((name, value) for name, value in key if name in fleet_by)


@dataclass(frozen=True)
class BaselineRule:
    """One signal's baseline rule under one timing (Prometheus' or the in-process one)."""

    spec: Spec
    signal: BaselineSignal
    timing: Timing

    @cached_property
    def fleet_sli(self) -> SLI:
        return self.signal.sli.fleet(self.spec.fleet_by, FLEET_LEVEL)

    @property
    def sli_record(self) -> str:
        return self.signal.sli.record_name(_window(self.timing))

    @property
    def baseline_record(self) -> str:
        return f"{self.sli_record}_baseline"

    @property
    def fleet_record(self) -> str:
        return self.fleet_sli.record_name(_window(self.timing))

    @property
    def fleet_baseline_record(self) -> str:
        return f"{self.fleet_record}_baseline"

    @property
    def for_s(self) -> float:
        return self.spec.for_s(self.timing)

    @property
    def min_rate(self) -> float:
        return self.spec.min_traffic(self.timing)

    def labels(self, basis: str) -> dict[str, str]:
        return {"severity": SEVERITY.value, "action": self.signal.action.value, "basis": basis}

    def _on(self, sli: SLI) -> str:
        return f"on({', '.join(sli.by)})"

    # (1) The SLI, per replica and per fleet, where its window holds enough events.

    def _gated(self, sli: SLI, traffic: str) -> str:
        # NaN (no observations) is dropped by `>= 0`; an idle model has no SLI at all.
        window, on = _window(self.timing), self._on(sli)
        expr = f"({sli.promql(window)} >= 0) and {on} ({traffic} >= {number(self.min_rate)})"
        if sli.events_gate == "sli" and self.signal.min_events:
            expr += f" and {on} ({sli.events_promql(window)} >= {self.signal.min_events})"
        return expr

    def sli_expr(self) -> str:
        return self._gated(self.signal.sli, traffic_record(self.spec, self.timing))

    def fleet_sli_expr(self) -> str:
        return self._gated(
            self.fleet_sli, fleet_traffic(self.spec).record_name(_window(self.timing))
        )

    def gate(
        self,
        sli: dict[GroupKey, float],
        traffic: dict[GroupKey, float],
        events: dict[GroupKey, float],
    ) -> dict[GroupKey, float]:
        """`sli_expr` (or `fleet_sli_expr`) over computed SLI, traffic and event values."""
        need = self.signal.min_events if self.signal.sli.events_gate == "sli" else 0
        return {
            key: value
            for key, value in sli.items()
            if value >= 0
            and traffic.get(key, -math.inf) >= self.min_rate
            and (not need or events.get(key, -math.inf) >= need)
        }

    # (2) The baselines: a lagged median (the anomaly does not raise its own bar), floored (a
    # near-zero baseline does not make every blip 150%), once enough samples exist.

    def _lagged(self, record: str) -> str:
        window, offset = (
            duration(self.timing.baseline_window),
            duration(self.timing.baseline_offset),
        )
        return f"{record}[{window}] offset {offset}"

    def _baseline_expr(self, record: str, sli: SLI) -> str:
        lagged = self._lagged(record)
        return (
            f"clamp_min(quantile_over_time({number(self.spec.baseline_quantile)}, {lagged}), "
            f"{number(self.signal.floor)}) and {self._on(sli)} "
            f"(count_over_time({lagged}) >= {self.timing.min_baseline_samples})"
        )

    def baseline_expr(self) -> str:
        return self._baseline_expr(self.sli_record, self.signal.sli)

    def fleet_baseline_expr(self) -> str:
        return self._baseline_expr(self.fleet_record, self.fleet_sli)

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

    def _with_events(self, expr: str) -> str:
        """A ratio's alerts need `min_events` bad events in the window behind them."""
        sli = self.signal.sli
        if sli.events_gate != "alert" or not self.signal.min_events:
            return expr
        events = sli.events_promql(_window(self.timing))
        return f"{expr} and {ON} ({events} >= {self.signal.min_events})"

    def breach_expr(self) -> str:
        factor = number(self.spec.breach_factor)
        return self._with_events(f"{self.sli_record} > {ON} ({factor} * {self.baseline_record})")

    def fleet_breach_expr(self) -> str:
        factor, on = number(self.spec.breach_factor), self._on(self.fleet_sli)
        return self._with_events(
            f"{self.sli_record} > {on} group_left() ({factor} * {self.fleet_baseline_record})"
        )

    def cold_start_expr(self) -> str:
        threshold = number(self.signal.cold_start_threshold)
        return self._with_events(
            f"{self.sli_record} > {threshold} unless {ON} {self.baseline_record} "
            f"unless {self._on(self.fleet_sli)} {self.fleet_baseline_record}"
        )

    def events_ok(self, key: GroupKey, events: dict[GroupKey, float]) -> bool:
        """The alerts' events gate for one replica's series (always true but for ratios)."""
        if self.signal.sli.events_gate != "alert" or not self.signal.min_events:
            return True
        return events.get(key, -math.inf) >= self.signal.min_events

    def bases(self, value: float, own: float | None, fleet: float | None) -> list[str]:
        """Which of the three alert expressions are true for this SLI value (events aside)."""
        factor = self.spec.breach_factor
        out = []
        if own is not None and value > factor * own:
            out.append(BASELINE)
        if fleet is not None and value > factor * fleet:
            out.append(FLEET)
        if own is None and fleet is None and value > self.signal.cold_start_threshold:
            out.append(COLD_START)
        return out


def baseline_rules(spec: Spec, timing: Timing) -> tuple[BaselineRule, ...]:
    return tuple(BaselineRule(spec, signal, timing) for signal in spec.baselines)
