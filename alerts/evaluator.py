"""The baseline rules of the spec, evaluated in-process over the service's own registry.

The degradation controller must not depend on Prometheus being up, and should react in seconds:
this runs the same rule (traffic-gated SLI, lagged robust baseline, breach factor, consecutive
evaluations, cold-start threshold) as alerts/generated/baselines.rules.yml, with the spec's
`in_process` timing (1 s evaluations over 30 s windows) unless told otherwise. With
`spec.prometheus` timing it reaches the same verdicts as Prometheus on the same samples, which
tests/alerts/test_evaluator_agreement.py checks against promtool.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from alerts.promql_math import quantile
from alerts.samples import SampleBuffer, Source, read_source
from alerts.sli import GroupKey
from alerts.spec import BaselineSignal, Spec, Timing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertState:
    """One active (pending or firing) baseline alert for one model."""

    alert: str
    labels: tuple[tuple[str, str], ...]  # the SLI's series labels (model, and target labels)
    basis: str  # "baseline" or "cold_start"
    state: str  # "pending" or "firing"
    value: float  # the SLI now
    baseline: float | None  # None while in cold start
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
        self._source = source
        self._clock = clock
        self._names = frozenset(
            name
            for sli in (spec.traffic, *(s.sli for s in spec.baselines))
            for name in sli.sample_names()
        )
        interval_ms = round(self.timing.interval * 1000)
        self._interval_ms = interval_ms
        self._window_ms = round(self.timing.rate_window * 1000)
        self._offset_ms = round(self.timing.baseline_offset * 1000)
        self._baseline_ms = round(self.timing.baseline_window * 1000)
        self._for_ms = round(spec.for_s(self.timing) * 1000)
        # Enough samples for one rate window even if step() runs 4x faster than the interval.
        self._buffer = SampleBuffer(
            self._window_ms + interval_ms, 4 * (self._window_ms // interval_ms) + 8
        )
        history_len = (self._baseline_ms + self._offset_ms) // interval_ms + 2
        self._history: dict[tuple[str, GroupKey], deque[tuple[int, float]]] = {}
        self._history_len = history_len
        self._active: dict[tuple[str, str, GroupKey], int] = {}
        self._last_eval_ms: int | None = None
        self._states: list[AlertState] = []

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
        spec = self.spec
        traffic = spec.traffic.compute(self._buffer, t_ms, self._window_ms)
        true_now: dict[tuple[str, str, GroupKey], tuple[BaselineSignal, float, float | None]] = {}
        for signal in spec.baselines:
            sli = {
                key: value
                for key, value in signal.sli.compute(self._buffer, t_ms, self._window_ms).items()
                if value >= 0 and traffic.get(key, -math.inf) >= spec.min_traffic_rps
            }  # `>= 0` also drops NaN, as in the recording rule
            baselines = self._baselines(signal, sli, t_ms)
            for key, value in sli.items():
                baseline = baselines.get(key)
                if baseline is not None and value > spec.breach_factor * baseline:
                    true_now[(signal.alert, "baseline", key)] = (signal, value, baseline)
                elif baseline is None and value > signal.cold_start_threshold:
                    true_now[(signal.alert, "cold_start", key)] = (signal, value, None)
        self._active = {k: self._active.get(k, t_ms) for k in true_now}
        states = []
        for (alert, basis, key), (signal, value, baseline) in sorted(true_now.items()):
            since = self._active[(alert, basis, key)]
            states.append(
                AlertState(
                    alert=alert,
                    labels=key,
                    basis=basis,
                    state="firing" if t_ms - since >= self._for_ms else "pending",
                    value=value,
                    baseline=baseline,
                    action=signal.action.value,
                    severity="warning",
                    active_since=since / 1000,
                )
            )
        return states

    def _baselines(
        self, signal: BaselineSignal, sli: dict[GroupKey, float], t_ms: int
    ) -> dict[GroupKey, float]:
        """Record this evaluation's SLI, then the lagged median of each series' history."""
        for key, value in sli.items():
            history = self._history.setdefault((signal.alert, key), deque(maxlen=self._history_len))
            history.append((t_ms, value))
        end = t_ms - self._offset_ms
        start = end - self._baseline_ms
        out = {}
        for (alert, key), history in list(self._history.items()):
            if alert != signal.alert:
                continue
            while history and history[0][0] < start:
                history.popleft()
            if not history:
                del self._history[(alert, key)]
                continue
            values = [v for t, v in history if t <= end]
            if len(values) >= self.timing.min_baseline_samples:
                out[key] = max(signal.floor, quantile(self.spec.baseline_quantile, values))
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
