"""The one spec of every signal, baseline, SLO and alert inferwatch has.

Everything else in alerts/ is generated from this module: the Prometheus rule files, the
Alertmanager tree, the runbook, the promtool tests and the in-process evaluator. A threshold is
written once (in alerts/values.yml, the deployment's numbers) and a policy once (here), so the
page, the ticket and the degradation controller cannot disagree. The types are in
alerts/spec_types.py, the static guards in alerts/guards.py, who each SLI counts in
alerts/populations.py.
"""

from __future__ import annotations

from alerts.exposition import (
    DURATION,
    HTTP_RESPONSES,
    INTER_TOKEN,
    PRE_ENGINE_FAILURES,
    QUEUE_DEPTH,
    QUEUE_WAIT,
    REJECTIONS,
    REQUESTS,
    SERVED,
    SERVER_REFUSALS,
    TTFT,
)
from alerts.guards import guards, tail_observations
from alerts.populations import ARRIVALS, ERROR_RATIO, SERVED_TRAFFIC
from alerts.runbook_entries import RUNBOOKS
from alerts.sli import SLI, GaugeSum, HistogramQuantile, selector
from alerts.spec_types import IN_PROCESS_TIMING as IN_PROCESS_TIMING
from alerts.spec_types import PER_MODEL as PER_MODEL
from alerts.spec_types import PER_SERVICE_MODEL as PER_SERVICE_MODEL
from alerts.spec_types import PROMETHEUS_TIMING as PROMETHEUS_TIMING
from alerts.spec_types import SERVICE_JOB as SERVICE_JOB
from alerts.spec_types import SLO, Action, BaselineSignal, BurnWindow, Spec
from alerts.spec_types import Alert as Alert
from alerts.spec_types import Severity as Severity
from alerts.spec_types import Timing as Timing
from alerts.values import Thresholds, load_thresholds

# Minimum events in one rate window (SLO practice: a ratio of a handful of events means
# nothing). 30 served requests in 5 m is the old 0.1 req/s gate; a ratio's alert needs 5 bad
# events behind it; a quantile needs 3 observations above it (60 for a p95, 300 for a p99).
MIN_REQUESTS = 30
MIN_BAD_EVENTS = 5
MIN_TAIL_EVENTS = 3
MIN_TRAFFIC_RPS = MIN_REQUESTS / PROMETHEUS_TIMING.rate_window  # 0.1 req/s


def _quantile(metric: str, q: float) -> HistogramQuantile:
    return HistogramQuantile(metric=metric, q=q, by=PER_MODEL)


def baselines(
    th: Thresholds,
    *,
    error_ratio: SLI = ERROR_RATIO,
    min_bad_events: int = MIN_BAD_EVENTS,
    min_tail_events: int = MIN_TAIL_EVENTS,
) -> tuple[BaselineSignal, ...]:
    p95, p99 = tail_observations(0.95, min_tail_events), tail_observations(0.99, min_tail_events)
    return (
        BaselineSignal(
            alert="InferwatchTimeToFirstTokenAboveBaseline",
            sli=_quantile(TTFT, 0.95),
            floor=0.05,
            cold_start_threshold=th.time_to_first_token_cold_start_seconds,
            action=Action.SHED_LOW_PRIORITY,
            what="p95 time to first token",
            unit="s",
            min_events=p95,
        ),
        BaselineSignal(
            alert="InferwatchRequestLatencyAboveBaseline",
            sli=_quantile(DURATION, 0.99),
            floor=0.5,
            cold_start_threshold=th.request_latency_cold_start_seconds,
            action=Action.CAP_TOKENS,
            what="p99 request latency",
            unit="s",
            min_events=p99,
        ),
        BaselineSignal(
            alert="InferwatchErrorRatioAboveBaseline",
            sli=error_ratio,
            floor=0.01,
            cold_start_threshold=th.error_ratio_cold_start,
            action=Action.TIGHTEN_CONCURRENCY,
            what="failed share of served requests",
            unit="",
            min_events=min_bad_events,
        ),
        BaselineSignal(
            alert="InferwatchQueueDepthAboveBaseline",
            sli=GaugeSum(metric=QUEUE_DEPTH, by=PER_MODEL),
            floor=5.0,
            cold_start_threshold=th.queue_depth_cold_start,
            action=Action.SHED_LOW_PRIORITY,
            what="queue depth",
            unit="",
        ),
        BaselineSignal(
            alert="InferwatchQueueWaitAboveBaseline",
            sli=_quantile(QUEUE_WAIT, 0.95),
            floor=0.05,
            cold_start_threshold=th.queue_wait_cold_start_seconds,
            action=Action.SHED_LOW_PRIORITY,
            what="p95 queue wait",
            unit="s",
            min_events=p95,
        ),
        BaselineSignal(
            # Time per output token: unlike a whole request's duration, it does not follow the
            # answer's length. Slower decoding means a bigger batch than the GPU keeps up with.
            alert="InferwatchInterTokenLatencyAboveBaseline",
            sli=_quantile(INTER_TOKEN, 0.95),
            floor=0.01,
            cold_start_threshold=th.inter_token_latency_cold_start_seconds,
            action=Action.SHED_LOW_PRIORITY,
            what="p95 inter-token latency",
            unit="s",
            min_events=p95,
        ),
    )


_SLO_BY = ", ".join(PER_SERVICE_MODEL)
_REFUSED = selector(REJECTIONS, ("reason", SERVER_REFUSALS))
_PRE_ENGINE = f'{HTTP_RESPONSES}{{status_class="5xx", reason=~"{"|".join(PRE_ENGINE_FAILURES)}"}}'
# The HTTP counter has no model label: a process serves one model, so each instance's failures
# are its model's (joined from the requests counter; an instance with several models would
# count them for each, erring towards the page).
_PRE_ENGINE_BY_MODEL = (
    f"(sum by (instance, job) ({{fn}}({_PRE_ENGINE}[{{window}}])) * on(instance, job) "
    f"group_right() group by (instance, job, model) ({REQUESTS}))"
)
SLOS = (
    SLO(
        name="availability",
        record_metric="inferwatch_requests",
        record_op="unavailable_ratio",
        objective=0.999,
        budget=0.001,
        # Server-caused refusals hurt users as much as failures, and so do 5xx answers for
        # requests the engine never saw; per-key rate limits, oversized prompts and keys or
        # priorities the client may not use are the client's doing and are in neither part,
        # nor are cancellations: the population is what the service served, chose to refuse,
        # or failed to hand to the engine (alerts/exposition.py, docs/alerting.md).
        bad=(
            f'sum by ({_SLO_BY}) ({{fn}}({REQUESTS}{{outcome="failed"}}[{{window}}])'
            f" or {{fn}}({_REFUSED}[{{window}}]) or {_PRE_ENGINE_BY_MODEL})"
        ),
        total=(
            f"sum by ({_SLO_BY}) ({{fn}}({selector(REQUESTS, ('outcome', SERVED))}[{{window}}])"
            f" or {{fn}}({_REFUSED}[{{window}}]) or {_PRE_ENGINE_BY_MODEL})"
        ),
        what="requests failed, refused by the service, or answered 5xx before the engine",
    ),
    SLO(
        name="ttft",
        record_metric=TTFT,
        record_op="slow_ratio",
        objective=0.99,
        budget=0.01,
        # le is matched by regex: Prometheus 3 writes le="1.0" where 2.x wrote le="1".
        bad=(
            f"sum by ({_SLO_BY}) ({{fn}}({TTFT}_count[{{window}}]))"
            f' - sum by ({_SLO_BY}) ({{fn}}({TTFT}_bucket{{le=~"1(\\\\.0)?"}}[{{window}}]))'
        ),
        total=f"sum by ({_SLO_BY}) ({{fn}}({TTFT}_count[{{window}}]))",
        what="requests whose first token took longer than 1 s",
    ),
)

BURN_WINDOWS = (
    BurnWindow(long_s=3600, short_s=300, burn_rate=14.4, severity=Severity.CRITICAL),
    BurnWindow(long_s=6 * 3600, short_s=1800, burn_rate=6.0, severity=Severity.CRITICAL),
    BurnWindow(long_s=3 * 86400, short_s=6 * 3600, burn_rate=1.0, severity=Severity.WARNING),
)


def build_spec(
    th: Thresholds,
    *,
    traffic: SLI = SERVED_TRAFFIC,
    error_ratio: SLI = ERROR_RATIO,
    min_bad_events: int = MIN_BAD_EVENTS,
    min_tail_events: int = MIN_TAIL_EVENTS,
) -> Spec:
    """The spec around one deployment's thresholds (alerts/values.yml). The keywords are the
    policy's populations and minimum events; tests build earlier policies from them to show
    the promtool cases fail there."""
    minimums = {"min_bad_events": min_bad_events, "min_tail_events": min_tail_events}
    return Spec(
        baselines=baselines(th, error_ratio=error_ratio, **minimums),
        slos=SLOS,
        burn_windows=BURN_WINDOWS,
        guards=guards(
            th, min_requests=MIN_REQUESTS, traffic=traffic, error_ratio=error_ratio, **minimums
        ),
        runbooks=RUNBOOKS,
        traffic=traffic,
        arrivals=ARRIVALS,
        min_requests=MIN_REQUESTS,
        min_bad_events=min_bad_events,
    )


THRESHOLDS = load_thresholds()
SPEC = build_spec(THRESHOLDS)
