"""The static guards and hard failures (generated/guards.rules.yml), built around the thresholds
of alerts/values.yml.

Ratio guards count the population they judge (failures among served requests, refusals among
every arrival) and need enough events in their window to mean anything, like the baseline SLIs.
The plain `METRIC > N` forms stay plain: the admission guards (inference/admission/guards.py)
read them back from this spec.
"""

from __future__ import annotations

from alerts.exposition import INTER_TOKEN, REJECTIONS, REQUESTS, SERVER_REFUSALS
from alerts.populations import ERROR_RATIO, SERVED_TRAFFIC
from alerts.promql_text import duration, number
from alerts.sli import SLI, HistogramQuantile, selector
from alerts.spec_types import PER_MODEL, SERVICE_JOB, Action, Alert, Severity
from alerts.values import Thresholds

_BY = ", ".join(PER_MODEL)
_ON = f"on({_BY})"
_UP = f'up{{job="{SERVICE_JOB}"}}'
_WHERE = "model {{ $labels.model }} on {{ $labels.instance }}"
WINDOW_S = 300  # the guards' rate window: Prometheus' rate window (alerts/spec_types.py)
WINDOW = duration(WINDOW_S)
# What the refusal guard counts: the service's own refusals, less the controller's shedding
# (InferwatchDegradationActive says when that lasts).
REFUSED = tuple(r for r in SERVER_REFUSALS if r != "shed")

INTER_TOKEN_P99 = HistogramQuantile(metric=INTER_TOKEN, q=0.99, by=PER_MODEL)


def _at_least(expr: str, count: float) -> str:
    """`expr` (a per-model series) must be at least `count`: a gate on an `and`."""
    return f"{_ON} ({expr} >= {number(count)})"


def tail_observations(q: float, tail_events: int) -> int:
    """Observations a q-quantile needs so that `tail_events` of them lie above it."""
    return round(tail_events / (1 - q))


def guards(
    th: Thresholds,
    *,
    min_requests: int,
    min_bad_events: int,
    min_tail_events: int,
    traffic: SLI = SERVED_TRAFFIC,
    error_ratio: SLI = ERROR_RATIO,
) -> tuple[Alert, ...]:
    """Every guard. A ratio guard judges a 5 m window only with `min_requests` served (or
    arriving) requests and `min_bad_events` bad ones in it; a quantile guard only with
    `min_tail_events` observations above the quantile (a p99 of 30 observations is their
    maximum). `traffic` and `error_ratio` are the populations (alerts/populations.py)."""
    gate = min_requests / WINDOW_S  # the same served rate as the baseline SLIs' gate
    served = _at_least(traffic.promql(WINDOW), gate)
    refused = selector(REJECTIONS, ("reason", REFUSED))
    arrivals = f"sum by ({_BY}) (rate({REQUESTS}[{WINDOW}]))"
    refusal_ratio = f"sum by ({_BY}) (rate({refused}[{WINDOW}])) / {arrivals}"
    refusals = f"sum by ({_BY}) (increase({refused}[{WINDOW}]))"
    itl_events = INTER_TOKEN_P99.events_promql(WINDOW)
    itl_observations = tail_observations(INTER_TOKEN_P99.q, min_tail_events)
    itl, err, ref = (
        number(th.inter_token_latency_p99_high_seconds),
        number(th.error_ratio_high),
        number(th.refusal_ratio_high),
    )
    return (
        Alert(
            name="InferwatchGPUSaturated",
            expr=f"inferwatch_gpu_utilization_ratio > {number(th.gpu_utilization_high)}",
            for_s=60,
            severity=Severity.WARNING,
            summary=f"GPU utilisation above {_pct(th.gpu_utilization_high)} for a minute.",
            description="GPU {{ $labels.gpu }} on {{ $labels.instance }} has been more than "
            f"{_pct(th.gpu_utilization_high)} busy for 1 minute; low-priority traffic is being "
            "shed.",
            labels=(("action", Action.SHED_LOW_PRIORITY.value),),
        ),
        Alert(
            name="InferwatchKVCacheSaturated",
            expr=f"inferwatch_kv_cache_usage_ratio > {number(th.kv_cache_usage_high)}",
            for_s=60,
            severity=Severity.WARNING,
            summary=f"KV cache more than {_pct(th.kv_cache_usage_high)} full.",
            description=f"The KV cache of {_WHERE} has been more than "
            f"{_pct(th.kv_cache_usage_high)} full for 1 minute; new requests get their "
            "max_tokens capped.",
            labels=(("action", Action.CAP_TOKENS.value),),
        ),
        Alert(
            name="InferwatchQueueDepthHigh",
            expr=f"sum by ({_BY}) (inferwatch_queue_depth) > {number(th.queue_depth_high)}",
            for_s=60,
            severity=Severity.WARNING,
            summary=f"More than {number(th.queue_depth_high)} requests waiting.",
            description=f"More than {number(th.queue_depth_high)} requests have been waiting "
            f"for {_WHERE} for 1 minute; low-priority traffic is being shed.",
            labels=(("action", Action.SHED_LOW_PRIORITY.value),),
        ),
        Alert(
            # The name users know; what it watches is the time per output token, since the
            # whole request's duration follows the answer's length.
            name="InferwatchRequestLatencyHigh",
            expr=f"{INTER_TOKEN_P99.promql(WINDOW)} > {itl} and {served} "
            f"and {_at_least(itl_events, itl_observations)}",
            for_s=120,
            severity=Severity.WARNING,
            summary=f"p99 inter-token latency above {itl} s for 2 minutes: streams stutter.",
            description=f"More than 1% of the tokens of {_WHERE} have come more than {itl} s "
            "after the previous one for 2 minutes.",
        ),
        Alert(
            name="InferwatchErrorRatioHigh",
            expr=f"{error_ratio.promql(WINDOW)} > {err} and {served} "
            f"and {_at_least(str(error_ratio.events_promql(WINDOW)), min_bad_events)}",
            for_s=60,
            severity=Severity.CRITICAL,
            summary=f"More than {_pct(th.error_ratio_high)} of served requests fail.",
            description=f"More than {_pct(th.error_ratio_high)} of the requests {_WHERE} "
            f"served (completed or failed) have failed, at least {min_bad_events} of them, for "
            "3 evaluations in a row.",
        ),
        Alert(
            name="InferwatchRefusalRatioHigh",
            expr=f"{refusal_ratio} > {ref} and {_at_least(arrivals, gate)} "
            f"and {_at_least(refusals, min_bad_events)}",
            for_s=300,
            severity=Severity.WARNING,
            summary=f"The service refuses more than {_pct(th.refusal_ratio_high)} of requests.",
            description=f"{_WHERE.capitalize()} has refused more than "
            f"{_pct(th.refusal_ratio_high)} of arriving requests for 5 minutes "
            f"({' or '.join(REFUSED)}): too little capacity for the traffic.",
        ),
        Alert(
            name="InferwatchHostCPUHigh",
            expr=f"inferwatch_host_cpu_utilization_ratio > {number(th.host_cpu_high)}",
            for_s=300,
            severity=Severity.WARNING,
            summary=f"Host CPU above {_pct(th.host_cpu_high)} for 5 minutes.",
            description="CPU of {{ $labels.instance }} has been more than "
            f"{_pct(th.host_cpu_high)} busy for 5 minutes.",
        ),
        Alert(
            name="InferwatchResourceUsageHigh",
            expr="inferwatch_gpu_memory_used_bytes / inferwatch_gpu_memory_total_bytes > "
            f"{number(th.memory_usage_high)}",
            for_s=600,
            severity=Severity.WARNING,
            summary=f"GPU memory more than {_pct(th.memory_usage_high)} used for 10 minutes.",
            description="GPU {{ $labels.gpu }} on {{ $labels.instance }} has used more than "
            f"{_pct(th.memory_usage_high)} of its memory for 10 minutes.",
            labels=(("resource", "gpu_memory"),),
        ),
        Alert(
            name="InferwatchResourceUsageHigh",
            expr="inferwatch_host_memory_used_bytes / inferwatch_host_memory_total_bytes > "
            f"{number(th.memory_usage_high)}",
            for_s=600,
            severity=Severity.WARNING,
            summary=f"Host memory more than {_pct(th.memory_usage_high)} used for 10 minutes.",
            description="{{ $labels.instance }} has used more than "
            f"{_pct(th.memory_usage_high)} of its memory for 10 minutes.",
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
            description="NVML on {{ $labels.instance }} has failed for 1 minute after reporting "
            "a working GPU in the last 6 hours.",
        ),
        Alert(
            name="InferwatchDegradationActive",
            expr="inferwatch_degradation_level > 0",
            for_s=1800,
            severity=Severity.WARNING,
            summary="The service has been degrading traffic for 30 minutes.",
            description=f"The degradation controller of {_WHERE} has been above level 0 for 30 "
            "minutes: capacity does not match demand.",
        ),
        Alert(
            name="InferwatchWatchdog",
            expr="vector(1)",
            for_s=0,
            severity=Severity.NONE,
            summary="Always firing: proves Prometheus, Alertmanager and the receiver work.",
            description="This alert is always firing. If the dead-man's switch stops hearing "
            "it, the alerting pipeline is broken.",
        ),
    )


def _pct(ratio: float) -> str:
    return f"{ratio * 100:g}%"
