"""The local trigger: the spec's rules evaluated every second on the service's own registry, so
protection works while Prometheus or Alertmanager is down.

Each step takes one snapshot of the registry and hands it to the in-process evaluator
(alerts/evaluator.py: the baseline rules, firing after 3 consecutive evaluations) and to the
guard watch (the spec's threshold guards with an action, guards.py). Firing alerts become the
`local` trigger's demands. The same loop refreshes the other triggers' demands (the
Alertmanager trigger's leases run out with time, not with requests) and ticks the controller.
A failing step is logged and the loop goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from alerts.evaluator import AlertState, Evaluator
from alerts.samples import Source
from alerts.spec import Spec
from inference.admission.controller import LOCAL, Controller, Demand
from inference.admission.guards import GuardWatch, guards_from_spec

log = logging.getLogger(__name__)


class _Snapshot:
    """One `collect()` of the registry per step, shared by the evaluator and the guards."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.families: list[Any] = []

    def take(self) -> None:
        self.families = list(self.source.collect())

    def collect(self) -> Iterable[Any]:
        return self.families

    def values(self, names: frozenset[str]) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for family in self.families:
            for sample in family.samples:
                if sample.name in names:
                    out.setdefault(sample.name, []).append(float(sample.value))
        return out


class LocalTrigger:
    def __init__(
        self,
        controller: Controller,
        spec: Spec,
        source: Source,
        *,
        clock: Callable[[], float],
        wall: Callable[[], float] | None = None,
        others: Iterable[tuple[str, Callable[[], list[Demand]]]] = (),
    ) -> None:
        self.controller = controller
        self._clock = clock
        self._snapshot = _Snapshot(source)
        kwargs = {} if wall is None else {"clock": wall}
        self.evaluator = Evaluator(spec, self._snapshot, **kwargs)
        self.guards = GuardWatch(guards_from_spec(spec))
        self._others = list(others)
        self._first_seen: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> list[Demand]:
        """Evaluate once, hand every trigger's demands to the controller, tick it."""
        now = self._clock()
        demands: list[Demand] = []
        try:
            self._snapshot.take()
            demands = self._firing(self.evaluator.step(), now)
            demands += self.guards.step(self._snapshot.values(self.guards.metric_names), now)
            self.controller.set_demands(LOCAL, demands)
        finally:  # the other triggers' leases and the controller's clock go on regardless
            for trigger, current in self._others:
                self.controller.set_demands(trigger, current())
            self.controller.tick()
        return demands

    def _firing(self, states: list[AlertState], now: float) -> list[Demand]:
        out, seen = [], set()
        for s in states:
            if not s.firing:
                continue
            key = (s.alert, s.basis, s.labels)
            seen.add(key)
            since = self._first_seen.setdefault(key, now)
            baseline = "no baseline yet" if s.baseline is None else f"baseline {s.baseline:.3g}"
            detail = f"{s.value:.3g} vs {baseline} ({s.basis})"
            out.append(Demand(LOCAL, s.action, s.alert, detail, since))
        self._first_seen = {k: v for k, v in self._first_seen.items() if k in seen}
        return out

    # -- the loop ---------------------------------------------------------------------------------
    def start(self, period: float = 1.0) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(period,), name="inferwatch-degradation", daemon=True
        )
        self._thread.start()

    def _loop(self, period: float) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # one bad step must not end protection for good
                log.exception("degradation step failed")
            self._stop.wait(period)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
