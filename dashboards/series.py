"""The series the dashboards read and which dashboard variables apply to each.

Raw names are written here once (dashboards/ may not import inference/, whose catalog defines
them); tests/dashboards checks every one against a real scrape of the service and the exporter,
so a rename fails a test instead of leaving an empty panel. Recorded series take their names and
labels from the alert spec (`recorded_labels`), never from this file.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from alerts.baseline import baseline_rules, traffic_record
from alerts.rules import slo_record
from alerts.spec import PER_SERVICE_MODEL, SPEC, Spec

# The dashboard variables, in their chained order, and the label each one filters.
VARIABLES = ("job", "instance", "model", "priority")
SCRAPED = ("job", "instance")  # Prometheus adds these to every scraped series

_MODEL = ("model",)
_PRIORITY = ("model", "priority")
_NONE: tuple[str, ...] = ()

# Service and engine (docs/metrics.md "Service and engine")
REQUESTS = "inferwatch_requests_total"
REJECTIONS = "inferwatch_request_rejections_total"
TTFT = "inferwatch_time_to_first_token_seconds"
INTER_TOKEN = "inferwatch_inter_token_latency_seconds"
DURATION = "inferwatch_request_duration_seconds"
QUEUE_WAIT = "inferwatch_queue_wait_seconds"
PROMPT_TOKENS = "inferwatch_prompt_tokens_total"
GENERATION_TOKENS = "inferwatch_generation_tokens_total"
QUEUE_DEPTH = "inferwatch_queue_depth"
QUEUE_OLDEST = "inferwatch_queue_oldest_wait_seconds"
RUNNING = "inferwatch_requests_running"
STEP_DURATION = "inferwatch_engine_step_duration_seconds"
BATCH_SIZE = "inferwatch_batch_size"
DEGRADATION_LEVEL = "inferwatch_degradation_level"
DEGRADATION_TRANSITIONS = "inferwatch_degradation_transitions_total"
CONCURRENCY_LIMIT = "inferwatch_admission_concurrency_limit"
NOTIFICATIONS = "inferwatch_alert_notifications_total"
HTTP_RESPONSES = "inferwatch_http_responses_total"
KV_USAGE = "inferwatch_kv_cache_usage_ratio"
KV_BLOCKS = "inferwatch_kv_cache_blocks"
PREFIX_QUERIES = "inferwatch_prefix_cache_queries_total"
PREFIX_HITS = "inferwatch_prefix_cache_hits_total"
PREEMPTIONS = "inferwatch_preemptions_total"
# GPU and host (exporters/catalog.py)
GPU_UP = "inferwatch_gpu_up"
GPU_INFO = "inferwatch_gpu_info"
GPU_UTILIZATION = "inferwatch_gpu_utilization_ratio"
GPU_MEMORY_USED = "inferwatch_gpu_memory_used_bytes"
GPU_MEMORY_TOTAL = "inferwatch_gpu_memory_total_bytes"
GPU_TEMPERATURE = "inferwatch_gpu_temperature_celsius"
GPU_POWER = "inferwatch_gpu_power_watts"
GPU_POWER_LIMIT = "inferwatch_gpu_power_limit_watts"
GPU_SM_CLOCK = "inferwatch_gpu_sm_clock_hertz"
GPU_CLOCK_EVENT = "inferwatch_gpu_clock_event_active"
GPU_ECC = "inferwatch_gpu_ecc_errors_total"
GPU_XID = "inferwatch_gpu_xid_errors_total"
HOST_CPU = "inferwatch_host_cpu_utilization_ratio"
HOST_MEMORY_USED = "inferwatch_host_memory_used_bytes"
HOST_MEMORY_TOTAL = "inferwatch_host_memory_total_bytes"
COLLECT_ERRORS = "inferwatch_exporter_collect_errors_total"  # every inferwatch target has it
# Prometheus' own
UP = "up"
ALERTS = "ALERTS"

# Of the variables' labels, those each raw family carries besides job and instance.
RAW: Mapping[str, tuple[str, ...]] = {
    **dict.fromkeys(
        (REQUESTS, REJECTIONS, TTFT, INTER_TOKEN, DURATION, QUEUE_WAIT, PROMPT_TOKENS,
         GENERATION_TOKENS, QUEUE_DEPTH, QUEUE_OLDEST, CONCURRENCY_LIMIT, PREEMPTIONS),
        _PRIORITY,
    ),
    **dict.fromkeys(
        (RUNNING, STEP_DURATION, BATCH_SIZE, DEGRADATION_LEVEL, DEGRADATION_TRANSITIONS,
         KV_USAGE, KV_BLOCKS, PREFIX_QUERIES, PREFIX_HITS),
        _MODEL,
    ),
    **dict.fromkeys(
        (NOTIFICATIONS, HTTP_RESPONSES, GPU_UP, GPU_INFO, GPU_UTILIZATION, GPU_MEMORY_USED,
         GPU_MEMORY_TOTAL, GPU_TEMPERATURE, GPU_POWER, GPU_POWER_LIMIT, GPU_SM_CLOCK,
         GPU_CLOCK_EVENT, GPU_ECC, GPU_XID, HOST_CPU, HOST_MEMORY_USED, HOST_MEMORY_TOTAL,
         COLLECT_ERRORS, UP),
        _NONE,
    ),
}  # fmt: skip
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def family(name: str) -> str:
    """A histogram's `_bucket`/`_count`/`_sum` series -> its family name."""
    for suffix in HISTOGRAM_SUFFIXES:
        stem = name.removesuffix(suffix)
        if stem != name and stem in RAW:
            return stem
    return name


def recorded_labels(spec: Spec = SPEC) -> dict[str, tuple[str, ...]]:
    """Every series the generated rules record, with the labels its rule keeps."""
    timing = spec.prometheus
    out: dict[str, tuple[str, ...]] = {traffic_record(spec, timing): spec.traffic.by}
    for rule in baseline_rules(spec, timing):
        out[rule.sli_record] = out[rule.baseline_record] = rule.signal.sli.by
    windows = {w for b in spec.burn_windows for w in (b.long_s, b.short_s)}
    for slo in spec.slos:
        for window in windows:
            out[slo_record(slo, window)] = PER_SERVICE_MODEL
    return out


@cache
def _recorded() -> dict[str, tuple[str, ...]]:
    return recorded_labels(SPEC)


def labels_of(name: str) -> tuple[str, ...]:
    """The variables' labels a series carries; KeyError for a series nobody declared."""
    recorded = _recorded()
    if name in recorded:
        return tuple(label for label in VARIABLES if label in recorded[name])
    return (*SCRAPED, *RAW[family(name)])
