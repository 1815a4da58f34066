"""The spec's static guards that carry an `action`, evaluated in-process on the registry.

The in-process evaluator (alerts/evaluator.py) runs the baseline rules only; the seeds' policy
("GPU utilisation > 90% for 60 s rejects low-priority work") lives in alerts/spec.py as the
`InferwatchGPUSaturated` guard. A guard of the form `METRIC > N` or `sum by (...) (METRIC) > N`
is read from the spec object itself (metric, threshold, `for`, action), so the service and
Prometheus cannot disagree about it. On a host without a GPU (no utilisation series) the GPU
guard follows the KV-cache guard's series and threshold instead, with the GPU guard's own
action and duration: the same policy, on the saturation signal that host has.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from alerts.spec import Alert, Spec
from inference.admission.controller import LOCAL, Demand

log = logging.getLogger(__name__)

GPU_GUARD = "InferwatchGPUSaturated"
KV_GUARD = "InferwatchKVCacheSaturated"
_EXPR = re.compile(
    r"\s*(?:(?P<agg>sum) by \([^)]*\) \()?(?P<metric>[a-z_:][a-z0-9_:]*)\)?"
    r"\s*>\s*(?P<threshold>[0-9.]+)\s*"
)


@dataclass(frozen=True)
class Condition:
    metric: str
    threshold: float
    summed: bool  # sum over series (per model) rather than the worst single series

    def value(self, samples: dict[str, list[float]]) -> float | None:
        values = samples.get(self.metric)
        if not values:
            return None
        return sum(values) if self.summed else max(values)


@dataclass(frozen=True)
class Guard:
    alert: str
    action: str
    for_s: float
    condition: Condition
    fallback: Condition | None = None  # used when the condition's metric has no series


def condition(alert: Alert) -> Condition | None:
    match = _EXPR.fullmatch(alert.expr)
    if match is None:
        return None
    return Condition(match["metric"], float(match["threshold"]), match["agg"] is not None)


def guards_from_spec(spec: Spec) -> list[Guard]:
    """Every guard with an action whose expression is a plain threshold."""
    by_name = {a.name: a for a in spec.guards}
    out = []
    for alert in spec.guards:
        action = dict(alert.labels).get("action")
        if action is None:
            continue
        cond = condition(alert)
        if cond is None:
            log.warning("guard not evaluated in-process", extra={"fields": {"alert": alert.name}})
            continue
        fallback = None
        if alert.name == GPU_GUARD and KV_GUARD in by_name:
            fallback = condition(by_name[KV_GUARD])
        out.append(Guard(alert.name, action, alert.for_s, cond, fallback))
    return out


class GuardWatch:
    """Holds since-when each guard's condition has been true; stateful across steps."""

    def __init__(self, guards: Iterable[Guard]) -> None:
        self.guards = list(guards)
        self._true_since: dict[str, float] = {}

    @property
    def metric_names(self) -> frozenset[str]:
        names = set()
        for g in self.guards:
            names.add(g.condition.metric)
            if g.fallback is not None:
                names.add(g.fallback.metric)
        return frozenset(names)

    def step(self, samples: dict[str, list[float]], now: float) -> list[Demand]:
        demands = []
        for guard in self.guards:
            cond = guard.condition
            value = cond.value(samples)
            if value is None and guard.fallback is not None:
                cond, value = guard.fallback, guard.fallback.value(samples)
            if value is None or not value > cond.threshold:
                self._true_since.pop(guard.alert, None)
                continue
            since = self._true_since.setdefault(guard.alert, now)
            if now - since >= guard.for_s:
                detail = f"{cond.metric} {value:.3g} > {cond.threshold:g} for {guard.for_s:g} s"
                demands.append(Demand(LOCAL, guard.action, guard.alert, detail, since))
        return demands
