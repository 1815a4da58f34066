"""The baseline rules of the spec, evaluated in-process over the service's own registry.

The degradation controller must not depend on Prometheus being up, and should react in seconds:
this runs the Python half of alerts/baseline.py (SLIs gated on served requests and on their
events, lagged robust baselines per replica and per fleet, breach factor, consecutive
evaluations, cold-start threshold), whose PromQL half is alerts/generated/baselines.rules.yml,
with the spec's `in_process` timing (1 s evaluations over 30 s windows) unless told otherwise.
With `spec.prometheus` timing it reaches the same verdicts as Prometheus on the same samples,
which tests/alerts/test_evaluator_agreement.py checks against promtool.

For a single process the fleet is itself: its registry has no `instance` or `job` label, so a
series' fleet key (job, model) is its own key, the fleet SLI and baseline are the replica's, and
a `basis: fleet` alert would repeat its `basis: baseline` twin; it is not reported. Fed series
of several replicas (the agreement test's), the evaluator computes fleets as Prometheus does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from alerts.baseline import FLEET, BaselineRule, baseline_rules, fleet_key, fleet_traffic
from alerts.samples import SampleBuffer, Source, read_source
from alerts.sli import GroupKey
from alerts.spec_types import Spec, Timing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertState:
    """One active (pending or firing) baseline alert for one model."""

    alert: str
    labels: tuple[tuple[str, str], ...]  # the SLI's series labels (model, and target labels)
    basis: str  # "baseline", "fleet" or "cold_start"
    state: str  # "pending" or "firing"
    value: float  # the SLI now
    baseline: float | None  # the replica's or its fleet's (per basis); None in cold start
    action: str
    severity: str
    active_since: float  # seconds, the evaluator clock

    @property
    def model(self) -> str:
        return dict(self.labels).get("model", "")

    @property
    def firing(self) -> bool:
        return self.state == "firing"


class Evaluator:
    """Call `step()` once per sample; it evaluates whenever an evaluation interval has passed."""

    def __init__(
        self,
        spec: Spec,
        source: Source,
        clock: Callable[[], float] = time.time,
        timing: Timing | None = None,
    ) -> None:
        self.spec = spec
        self.timing = timing or spec.in_process
        self._rules = baseline_rules(spec, self.timing)
        self._source = source
        self._clock = clock
        self._fleet_traffic = fleet_traffic(spec)
        self._names = frozenset(
            name
            for rule in self._rules
            for sli in (spec.traffic, rule.signal.sli, rule.fleet_sli)
            for name in sli.sample_names()
        )
        interval_ms = round(self.timing.interval * 1000)
        self._interval_ms = interval_ms
        self._window_ms = round(self.timing.rate_window * 1000)
        self._for_ms = round(spec.for_s(self.timing) * 1000)
        # Enough samples for one rate window even if step() runs 4x faster than the interval.
        self._buffer = SampleBuffer(
            self._window_ms + interval_ms, 4 * (self._window_ms // interval_ms) + 8
        )
        lookback_ms = round((self.timing.baseline_window + self.timing.baseline_offset) * 1000)
        history_len = lookback_ms // interval_ms + 2
        # (alert, "own" or "fleet", series) -> its SLI history
        self._history: dict[tuple[str, str, GroupKey], deque[tuple[int, float]]] = {}
        self._history_len = history_len
        self._active: dict[tuple[str, str, GroupKey], int] = {}
        self._last_eval_ms: int | None = None
        self._states: list[AlertState] = []
        # The last evaluation's gated SLIs: (alert, series) -> (SLI, own baseline, fleet's).
        self.last_slis: dict[tuple[str, GroupKey], tuple[float, float | None, float | None]] = {}

    @property
    def footprint(self) -> tuple[int, int]:
        """(snapshots buffered, SLI samples kept across all series): both stay bounded."""
        return len(self._buffer), sum(len(h) for h in self._history.values())

    def step(self, now: float | None = None) -> list[AlertState]:
        """Sample the source; evaluate if due. Returns the active alerts of the last evaluation."""
        t_ms = round((self._clock() if now is None else now) * 1000)
        last = self._buffer.last_ms
        if last is not None and t_ms <= last:  # the clock did not move: nothing new to see
            return list(self._states)
        self._buffer.append(t_ms, read_source(self._source, self._names))
        due = self._last_eval_ms is None or t_ms - self._last_eval_ms >= 0.9 * self._interval_ms
        if due:
            self._last_eval_ms = t_ms
            self._states = self._evaluate(t_ms)
        return list(self._states)

    def _evaluate(self, t_ms: int) -> list[AlertState]:
        window, buffer = self._window_ms, self._buffer
        traffic = self.spec.traffic.compute(buffer, t_ms, window)
        fleet_traffic = self._fleet_traffic.compute(buffer, t_ms, window)
        # One process: no series has labels beyond its fleet's (no instance, no job).
        single = all(fleet_key(key, self.spec.fleet_by) == key for key in traffic)
        true_now: dict[tuple[str, str, GroupKey], tuple[BaselineRule, float, float | None]] = {}
        self.last_slis = {}
        for rule in self._rules:
            sli, fleet_sli = rule.signal.sli, rule.fleet_sli
            events = sli.compute_events(buffer, t_ms, window)
            own = rule.gate(sli.compute(buffer, t_ms, window), traffic, events)
            own_baselines = self._baselines(rule, "own", own, t_ms)
            if single:  # the fleet is the replica, to the bit: no second history
                fleet_baselines = own_baselines
            else:
                fleet = rule.gate(
                    fleet_sli.compute(buffer, t_ms, window),
                    fleet_traffic,
                    fleet_sli.compute_events(buffer, t_ms, window),
                )
                fleet_baselines = self._baselines(rule, "fleet", fleet, t_ms)
            for key, value in own.items():
                if not rule.events_ok(key, events):
                    continue
                fkey = fleet_key(key, self.spec.fleet_by)
                baselines = {"own": own_baselines.get(key), "fleet": fleet_baselines.get(fkey)}
                self.last_slis[(rule.signal.alert, key)] = (
                    value,
                    baselines["own"],
                    baselines["fleet"],
                )
                for basis in rule.bases(value, baselines["own"], baselines["fleet"]):
                    if basis == FLEET and fkey == key:  # one process: the fleet is itself
                        continue
                    base = baselines["fleet"] if basis == FLEET else baselines["own"]
                    true_now[(rule.signal.alert, basis, key)] = (rule, value, base)
        self._active = {k: self._active.get(k, t_ms) for k in true_now}
        states = []
        for (alert, basis, key), (rule, value, baseline) in sorted(true_now.items()):
            since = self._active[(alert, basis, key)]
            labels = rule.labels(basis)
            states.append(
                AlertState(
                    alert=alert,
                    labels=key,
                    basis=basis,
                    state="firing" if t_ms - since >= self._for_ms else "pending",
                    value=value,
                    baseline=baseline,
                    action=labels["action"],
                    severity=labels["severity"],
                    active_since=since / 1000,
                )
            )
        return states

    def _baselines(
        self, rule: BaselineRule, scope: str, sli: dict[GroupKey, float], t_ms: int
    ) -> dict[GroupKey, float]:
        """Record this evaluation's SLI (a replica's or a fleet's: `scope`), then each series'
        baseline over its kept history."""
        alert = rule.signal.alert
        for key, value in sli.items():
            history = self._history.setdefault((alert, scope, key), deque(maxlen=self._history_len))
            history.append((t_ms, value))
        start, _ = rule.lagged_range_ms(t_ms)
        out = {}
        for (name, kind, key), history in list(self._history.items()):
            if name != alert or kind != scope:
                continue
            while history and history[0][0] < start:  # older than any baseline will read
                history.popleft()
            if not history:
                del self._history[(name, kind, key)]
                continue
            baseline = rule.baseline(history, t_ms)
            if baseline is not None:
                out[key] = baseline
        return out

    def run_every(
        self, period: float = 1.0, on_step: Callable[[list[AlertState]], None] | None = None
    ) -> Runner:
        """Step every `period` seconds on a daemon thread until the returned runner is stopped."""
        return Runner(self, period, on_step)


class Runner:
    """A stoppable background loop; a failing step is logged and the loop goes on."""

    def __init__(
        self,
        evaluator: Evaluator,
        period: float,
        on_step: Callable[[list[AlertState]], None] | None,
    ) -> None:
        self._evaluator = evaluator
        self._period = period
        self._on_step = on_step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="alerts-evaluator", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                states = self._evaluator.step()
                if self._on_step is not None:
                    self._on_step(states)
            except Exception:  # one bad scrape must not end protection for good
                log.exception("in-process alert evaluation failed")
            self._stop.wait(self._period)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()
