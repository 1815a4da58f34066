"""What a spec is made of: signals, alerts, SLOs, burn windows, timings, and the spec itself.

alerts/spec.py holds the one spec built from these; the types live apart so the static guards
(alerts/guards.py) can be built from the deployment's thresholds without a circular import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from alerts.runbook_entries import Runbook
from alerts.sli import SLI

# Labels every per-model series keeps: the scrape target (so "service down for that instance" can
# inhibit it, and each replica gets its own baseline, like the in-process evaluator) and the model.
PER_MODEL = ("instance", "job", "model")
# A model's fleet: every replica of one job. SLOs are about users, across replicas, and each
# replica is also compared with its fleet's baseline (pod names change with every deploy).
PER_SERVICE_MODEL = ("job", "model")
SERVICE_JOB = "inferwatch"


class Severity(StrEnum):
    CRITICAL = "critical"  # pages the on-call
    WARNING = "warning"  # files a ticket
    INFO = "info"
    NONE = "none"  # Watchdog only


class Action(StrEnum):
    """What the degradation controller is asked to do; Alertmanager routes these to its webhook."""

    SHED_LOW_PRIORITY = "shed_low_priority"  # reject batch first, then standard
    CAP_TOKENS = "cap_tokens"  # cap max_tokens before rejecting anybody
    TIGHTEN_CONCURRENCY = "tighten_concurrency"  # lower the admission concurrency limit


@dataclass(frozen=True, kw_only=True)
class Timing:
    """Time parameters of one evaluation engine (seconds).

    Prometheus and the in-process evaluator run the same rules with different clocks: Prometheus
    every 30 s over 5 m windows; the service every second over 30 s windows, so it reacts before
    the first scrape. `duration_scale` shrinks static `for:` durations and SLO windows and exists
    only for fast test copies of the rule files.
    """

    name: str
    interval: float
    rate_window: float
    baseline_window: float
    baseline_offset: float
    min_baseline_samples: int
    duration_scale: float = 1.0


# Rule groups every 30 s; SLIs over 5 m; baseline = median of the hour before the last 15 min,
# defined once 30 min of it exist (60 samples).
PROMETHEUS_TIMING = Timing(
    name="prometheus", interval=30, rate_window=300, baseline_window=3600, baseline_offset=900,
    min_baseline_samples=60,
)  # fmt: skip
# The service's own loop: every 1 s over 30 s windows (30 samples per window, as 10 scrapes per
# 5 m window are for Prometheus); baseline = median of the 10 min before the last minute, defined
# once 5 min of it exist. Same breach factor, same 3 consecutive evaluations (for 2 s).
IN_PROCESS_TIMING = Timing(
    name="in_process", interval=1, rate_window=30, baseline_window=600, baseline_offset=60,
    min_baseline_samples=300,
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class BaselineSignal:
    """An SLI that alerts when it exceeds `breach_factor` x its own lagged median, or that of
    its fleet.

    Adding one to `BASELINES` is the whole change: its rules, runbook section, promtool tests
    and in-process evaluation all follow from this record.
    """

    alert: str  # Inferwatch<What>AboveBaseline
    sli: SLI
    floor: float  # the baseline never drops below this, so near-zero baselines do not flap
    cold_start_threshold: float  # static threshold while no baseline exists yet
    action: Action
    what: str  # human name of the SLI, used in annotations
    unit: str
    # The fewest of the SLI's events (histogram observations, a ratio's bad events) in one rate
    # window for it to mean anything; where it applies is the SLI's `events_gate`.
    min_events: int = 0

    def __post_init__(self) -> None:
        _alert_middle(self.alert)  # a misnamed alert fails here, not in a renderer

    @property
    def short_name(self) -> str:
        """The alert name's middle in snake case, for file names: no second registry to update.

        InferwatchKVCacheUsageAboveBaseline -> kv_cache_usage.
        """
        return _WORD_BREAK.sub("_", _alert_middle(self.alert)).lower()


_BASELINE_ALERT = re.compile(r"Inferwatch([A-Z][A-Za-z0-9]*)AboveBaseline")


def _alert_middle(alert: str) -> str:
    match = _BASELINE_ALERT.fullmatch(alert)
    if match is None:
        raise ValueError(f"{alert}: baseline alerts are named {_BASELINE_ALERT.pattern}")
    return match.group(1)


# Before an upper-case letter that follows a lower-case one or starts a word after an acronym.
_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@dataclass(frozen=True, kw_only=True)
class Alert:
    """A PromQL-only alert: static guards, hard failures, Watchdog."""

    name: str
    expr: str
    for_s: float
    severity: Severity
    summary: str
    description: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Record:
    """A recording rule outside the baselines (the refusal ratio): shown on dashboards."""

    record: str
    expr: str


@dataclass(frozen=True, kw_only=True)
class BurnWindow:
    """Alert when the bad-event ratio is above `burn_rate` x the budget over both windows."""

    long_s: float
    short_s: float
    burn_rate: float
    severity: Severity


@dataclass(frozen=True, kw_only=True)
class SLO:
    """A ratio of bad to all events; `bad`/`total` are PromQL templates over `{window}`, with
    `{fn}` where the template's counters are read (`rate` for the ratio, `increase` for the
    count of bad events a burn alert needs behind it)."""

    name: str
    record_metric: str
    record_op: str
    objective: float
    budget: float  # 1 - objective, written out so rendered thresholds stay exact decimals
    bad: str
    total: str
    what: str

    def expr(self, part: str, fn: str, window: str) -> str:
        return part.replace("{fn}", fn).replace("{window}", window)


@dataclass(frozen=True, kw_only=True)
class Spec:
    baselines: tuple[BaselineSignal, ...]
    slos: tuple[SLO, ...]
    burn_windows: tuple[BurnWindow, ...]
    guards: tuple[Alert, ...]
    runbooks: dict[str, Runbook] = field(compare=False)  # prose: not part of a spec's identity
    traffic: SLI  # served requests: the gate of every baseline SLI
    arrivals: SLI  # every request that ended, refused ones included
    # A window needs this many served requests (30 in 5 m: 0.1 req/s) for any per-model SLI.
    min_requests: int = 30
    # A burn alert needs this many bad events in its long window (SLO practice: nobody is paged
    # for two failed requests at night, whatever their share).
    min_bad_events: int = 5
    fleet_by: tuple[str, ...] = PER_SERVICE_MODEL
    breach_factor: float = 1.5
    consecutive: int = 3
    baseline_quantile: float = 0.5
    prometheus: Timing = field(default_factory=lambda: PROMETHEUS_TIMING)
    in_process: Timing = field(default_factory=lambda: IN_PROCESS_TIMING)

    def for_s(self, timing: Timing) -> float:
        """`for:` that makes an alert fire at the `consecutive`-th true evaluation."""
        return (self.consecutive - 1) * timing.interval

    def min_traffic(self, timing: Timing) -> float:
        """The served rate (req/s) that holds `min_requests` in one rate window of `timing`."""
        return self.min_requests / timing.rate_window

    @property
    def min_traffic_rps(self) -> float:
        """Prometheus' traffic gate in req/s (0.1)."""
        return self.min_traffic(self.prometheus)
