"""The one spec of every signal, baseline, SLO and alert inferwatch has.

Everything else in alerts/ is generated from this module: the Prometheus rule files, the
Alertmanager tree, the runbook, the promtool tests and the in-process evaluator. A threshold is
written here once, so the page, the ticket and the degradation controller cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from alerts.runbook_entries import RUNBOOKS, Runbook
from alerts.sli import SLI, CounterRate, CounterRatio, GaugeSum, HistogramQuantile

# Labels every per-model series keeps: the scrape target (so "service down for that instance" can
# inhibit it, and each replica gets its own baseline, like the in-process evaluator) and the model.
PER_MODEL = ("instance", "job", "model")
# SLOs are about users, across replicas.
PER_SERVICE_MODEL = ("job", "model")
SERVICE_JOB = "inferwatch"
# Below this a model is idle: its SLIs are undefined, so nothing alerts on 2 requests at night.
MIN_TRAFFIC_RPS = 0.1


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
    """An SLI that alerts when it exceeds `breach_factor` x its own lagged median.

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
class BurnWindow:
    """Alert when the bad-event ratio is above `burn_rate` x the budget over both windows."""

    long_s: float
    short_s: float
    burn_rate: float
    severity: Severity


@dataclass(frozen=True, kw_only=True)
class SLO:
    """A ratio of bad to all events; `bad`/`total` are PromQL templates over `{window}`."""

    name: str
    record_metric: str
    record_op: str
    objective: float
    budget: float  # 1 - objective, written out so rendered thresholds stay exact decimals
    bad: str
    total: str
    what: str


@dataclass(frozen=True, kw_only=True)
class Spec:
    baselines: tuple[BaselineSignal, ...]
    slos: tuple[SLO, ...]
    burn_windows: tuple[BurnWindow, ...]
    guards: tuple[Alert, ...]
    runbooks: dict[str, Runbook]
    traffic: SLI
    min_traffic_rps: float = MIN_TRAFFIC_RPS
    breach_factor: float = 1.5
    consecutive: int = 3
    baseline_quantile: float = 0.5
    prometheus: Timing = field(default_factory=lambda: PROMETHEUS_TIMING)
    in_process: Timing = field(default_factory=lambda: IN_PROCESS_TIMING)

    def for_s(self, timing: Timing) -> float:
        """`for:` that makes an alert fire at the `consecutive`-th true evaluation."""
        return (self.consecutive - 1) * timing.interval


TTFT = "inferwatch_time_to_first_token_seconds"
DURATION = "inferwatch_request_duration_seconds"
QUEUE_WAIT = "inferwatch_queue_wait_seconds"
REQUESTS = "inferwatch_requests_total"
REJECTIONS = "inferwatch_request_rejections_total"
_BY = ", ".join(PER_MODEL)
_UP = f'up{{job="{SERVICE_JOB}"}}'

_TRAFFIC = CounterRate(metric=REQUESTS, by=PER_MODEL)
_ERROR_RATIO = CounterRatio(
    metric=REQUESTS, label="outcome", value="failed", op="error_ratio", by=PER_MODEL
)

BASELINES = (
    BaselineSignal(
        alert="InferwatchTimeToFirstTokenAboveBaseline",
        sli=HistogramQuantile(metric=TTFT, q=0.95, by=PER_MODEL),
        floor=0.05,
        cold_start_threshold=2.0,
        action=Action.SHED_LOW_PRIORITY,
        what="p95 time to first token",
        unit="s",
    ),
    BaselineSignal(
        alert="InferwatchRequestLatencyAboveBaseline",
        sli=HistogramQuantile(metric=DURATION, q=0.99, by=PER_MODEL),
        floor=0.5,
        cold_start_threshold=10.0,
        action=Action.CAP_TOKENS,
        what="p99 request latency",
        unit="s",
    ),
    BaselineSignal(
        alert="InferwatchErrorRatioAboveBaseline",
        sli=_ERROR_RATIO,
        floor=0.01,
        cold_start_threshold=0.05,
        action=Action.TIGHTEN_CONCURRENCY,
        what="failed-request ratio",
        unit="",
    ),
    BaselineSignal(
        alert="InferwatchQueueDepthAboveBaseline",
        sli=GaugeSum(metric="inferwatch_queue_depth", by=PER_MODEL),
        floor=5.0,
        cold_start_threshold=50.0,
        action=Action.SHED_LOW_PRIORITY,
        what="queue depth",
        unit="",
    ),
    BaselineSignal(
        alert="InferwatchQueueWaitAboveBaseline",
        sli=HistogramQuantile(metric=QUEUE_WAIT, q=0.95, by=PER_MODEL),
        floor=0.05,
        cold_start_threshold=2.0,
        action=Action.SHED_LOW_PRIORITY,
        what="p95 queue wait",
        unit="s",
    ),
)

_SLO_BY = ", ".join(PER_SERVICE_MODEL)
SLOS = (
    SLO(
        name="availability",
        record_metric="inferwatch_requests",
        record_op="unavailable_ratio",
        objective=0.999,
        budget=0.001,
        # Server-caused refusals hurt users as much as failures; per-key rate limits and
        # oversized prompts are the client's doing and do not burn the budget.
        bad=(
            f'sum by ({_SLO_BY}) (rate({REQUESTS}{{outcome="failed"}}[{{window}}])'
            f' or rate({REJECTIONS}{{reason=~"queue_full|shed|circuit_open"}}[{{window}}]))'
        ),
        total=f"sum by ({_SLO_BY}) (rate({REQUESTS}[{{window}}]))",
        what="requests failed or refused by the service",
    ),
    SLO(
        name="ttft",
        record_metric=TTFT,
        record_op="slow_ratio",
        objective=0.99,
        budget=0.01,
        # le is matched by regex: Prometheus 3 writes le="1.0" where 2.x wrote le="1".
        bad=(
            f"sum by ({_SLO_BY}) (rate({TTFT}_count[{{window}}]))"
            f' - sum by ({_SLO_BY}) (rate({TTFT}_bucket{{le=~"1(\\\\.0)?"}}[{{window}}]))'
        ),
        total=f"sum by ({_SLO_BY}) (rate({TTFT}_count[{{window}}]))",
        what="requests whose first token took longer than 1 s",
    ),
)

BURN_WINDOWS = (
    BurnWindow(long_s=3600, short_s=300, burn_rate=14.4, severity=Severity.CRITICAL),
    BurnWindow(long_s=6 * 3600, short_s=1800, burn_rate=6.0, severity=Severity.CRITICAL),
    BurnWindow(long_s=3 * 86400, short_s=6 * 3600, burn_rate=1.0, severity=Severity.WARNING),
)

_MODEL_ON_INSTANCE = "model {{ $labels.model }} on {{ $labels.instance }}"
GUARDS = (
    Alert(
        name="InferwatchGPUSaturated",
        expr="inferwatch_gpu_utilization_ratio > 0.9",
        for_s=60,
        severity=Severity.WARNING,
        summary="GPU utilisation above 90% for a minute.",
        description="GPU {{ $labels.gpu }} on {{ $labels.instance }} has been more than 90% "
        "busy for 1 minute; low-priority traffic is being shed.",
        labels=(("action", Action.SHED_LOW_PRIORITY.value),),
    ),
    Alert(
        name="InferwatchKVCacheSaturated",
        expr="inferwatch_kv_cache_usage_ratio > 0.9",
        for_s=60,
        severity=Severity.WARNING,
        summary="KV cache more than 90% full.",
        description=f"The KV cache of {_MODEL_ON_INSTANCE} has been more than 90% full for "
        "1 minute; new requests get their max_tokens capped.",
        labels=(("action", Action.CAP_TOKENS.value),),
    ),
    Alert(
        name="InferwatchQueueDepthHigh",
        expr=f"sum by ({_BY}) (inferwatch_queue_depth) > 100",
        for_s=60,
        severity=Severity.WARNING,
        summary="More than 100 requests waiting.",
        description=f"More than 100 requests have been waiting for {_MODEL_ON_INSTANCE} for "
        "1 minute; low-priority traffic is being shed.",
        labels=(("action", Action.SHED_LOW_PRIORITY.value),),
    ),
    Alert(
        name="InferwatchRequestLatencyHigh",
        expr=f"histogram_quantile(0.99, sum by ({_BY}, le) (rate({DURATION}_bucket[5m]))) > 1.5",
        for_s=120,
        severity=Severity.WARNING,
        summary="p99 request latency above 1.5 s for 2 minutes.",
        description=f"p99 end-to-end latency of {_MODEL_ON_INSTANCE} has been above 1.5 s for "
        "2 minutes.",
    ),
    Alert(
        name="InferwatchErrorRatioHigh",
        expr=f"{_ERROR_RATIO.promql('5m')} > 0.05 "
        f"and on({_BY}) {_TRAFFIC.promql('5m')} >= {MIN_TRAFFIC_RPS}",
        for_s=60,
        severity=Severity.CRITICAL,
        summary="More than 5% of requests fail.",
        description=f"More than 5% of the requests to {_MODEL_ON_INSTANCE} have failed for "
        "3 evaluations in a row.",
    ),
    Alert(
        name="InferwatchHostCPUHigh",
        expr="inferwatch_host_cpu_utilization_ratio > 0.85",
        for_s=300,
        severity=Severity.WARNING,
        summary="Host CPU above 85% for 5 minutes.",
        description="CPU of {{ $labels.instance }} has been more than 85% busy for 5 minutes.",
    ),
    Alert(
        name="InferwatchResourceUsageHigh",
        expr="inferwatch_gpu_memory_used_bytes / inferwatch_gpu_memory_total_bytes > 0.8",
        for_s=600,
        severity=Severity.WARNING,
        summary="GPU memory more than 80% used for 10 minutes.",
        description="GPU {{ $labels.gpu }} on {{ $labels.instance }} has used more than 80% "
        "of its memory for 10 minutes.",
        labels=(("resource", "gpu_memory"),),
    ),
    Alert(
        name="InferwatchResourceUsageHigh",
        expr="inferwatch_host_memory_used_bytes / inferwatch_host_memory_total_bytes > 0.8",
        for_s=600,
        severity=Severity.WARNING,
        summary="Host memory more than 80% used for 10 minutes.",
        description="{{ $labels.instance }} has used more than 80% of its memory for 10 minutes.",
        labels=(("resource", "host_memory"),),
    ),
    Alert(
        name="InferwatchServiceDown",
        expr=f"{_UP} == 0 or absent({_UP})",
        for_s=60,
        severity=Severity.CRITICAL,
        summary="The inferwatch service cannot be scraped.",
        description="Prometheus has not scraped job " + SERVICE_JOB + " on "
        "{{ $labels.instance }} for 1 minute (down, or no target at all).",
    ),
    Alert(
        name="InferwatchGPUDown",
        # Only where a GPU was seen in the last 6 h: CPU-only hosts export 0 all the time.
        expr="inferwatch_gpu_up == 0 and max_over_time(inferwatch_gpu_up[6h]) == 1",
        for_s=60,
        severity=Severity.CRITICAL,
        summary="A GPU that was working is gone.",
        description="NVML on {{ $labels.instance }} has failed for 1 minute after reporting a "
        "working GPU in the last 6 hours.",
    ),
    Alert(
        name="InferwatchDegradationActive",
        expr="inferwatch_degradation_level > 0",
        for_s=1800,
        severity=Severity.WARNING,
        summary="The service has been degrading traffic for 30 minutes.",
        description=f"The degradation controller of {_MODEL_ON_INSTANCE} has been above level 0 "
        "for 30 minutes: capacity does not match demand.",
    ),
    Alert(
        name="InferwatchWatchdog",
        expr="vector(1)",
        for_s=0,
        severity=Severity.NONE,
        summary="Always firing: proves Prometheus, Alertmanager and the receiver work.",
        description="This alert is always firing. If the dead-man's switch stops hearing it, "
        "the alerting pipeline is broken.",
    ),
)

SPEC = Spec(
    baselines=BASELINES,
    slos=SLOS,
    burn_windows=BURN_WINDOWS,
    guards=GUARDS,
    runbooks=RUNBOOKS,
    traffic=_TRAFFIC,
)
