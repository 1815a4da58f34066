"""Every metric family inferwatch exports, as data: the service's half here, the exporters' half
in exporters/catalog.py, both together in `CATALOG`.

`ServiceMetrics` and `QueueSource` build their families from these entries, docs/metrics.md is
generated from them (`inferwatch generate`), and tests check that the running service exports
exactly this catalog. A fixed label vocabulary lives here too, so the code that creates the
series up front and the reference page read the same tuple.
"""

from __future__ import annotations

from exporters.catalog import EXPORTER_FAMILIES, MetricDef, MetricType
from inference.backend import Priority

PRIORITIES: tuple[str, ...] = tuple(p.value for p in Priority)
OUTCOMES: tuple[str, ...] = ("completed", "rejected", "failed", "cancelled")
REJECTION_REASONS: tuple[str, ...] = (
    "queue_full",
    "shed",
    "rate_limited",
    "circuit_open",
    "prompt_too_long",
    "shutting_down",
    # admission (inference/admission/refusals.py)
    "concurrency_limit",
    "deadline_exceeded",
    "invalid_api_key",
    "priority_not_allowed",
)
STEP_PHASES: tuple[str, ...] = ("prefill", "decode", "mixed")
DEGRADATION_DIRECTIONS: tuple[str, ...] = ("up", "down")
DEGRADATION_TRIGGERS: tuple[str, ...] = ("local", "alertmanager", "manual")
NOTIFICATION_STATUSES: tuple[str, ...] = ("accepted", "duplicate", "unauthorized", "invalid")
KV_BLOCK_STATES: tuple[str, ...] = ("used", "free", "cached")
STATUS_CLASSES: tuple[str, ...] = ("2xx", "3xx", "4xx", "5xx")
# Why an HTTP answer was what it was: every refusal reason, then the API's own.
RESPONSE_REASONS: tuple[str, ...] = (
    "ok",
    *REJECTION_REASONS,
    "invalid_request",
    "model_not_found",
    "not_found",
    "method_not_allowed",
    "unauthorized",
    "request_too_large",
    "headers_too_large",
    "request_timeout",
    "client_closed",
    "engine_unavailable",  # the backend is not running (503)
    "generation_failed",  # the engine failed the request (500, or in-band in a stream)
    "shutdown",  # cut at the end of the shutdown grace period
    "internal",  # a server bug
    "http_error",
)
OTHER_ROUTE = "other"  # any path outside the app's route table: one value, never the path

# From 1 ms: fast deployments otherwise read every p99 as the first bucket. Each decade holds
# 1, 1.4, 2, 2.8, 4, 5.6, 8 (steps of at most 1.43, about sqrt(2)), so histogram_quantile stays
# well inside the alerts' 1.5x margin (alerts/exposition.py states the same layouts, and
# tests/alerts checks they agree); the lowest decade skips 1.4 and 2.8.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.002, 0.004, 0.0056, 0.008, 0.01, 0.014, 0.02, 0.028, 0.04, 0.056, 0.08, 0.1,
    0.14, 0.2, 0.28, 0.4, 0.56, 0.8, 1.0, 1.4, 2.0, 2.8, 4.0, 5.6, 8.0, 10.0, 14.0, 20.0, 28.0,
)  # fmt: skip
INTER_TOKEN_BUCKETS: tuple[float, ...] = (
    0.001, 0.0014, 0.002, 0.0028, 0.004, 0.0056, 0.008, 0.01, 0.014, 0.02, 0.028, 0.04, 0.056,
    0.08, 0.1, 0.14, 0.2, 0.28, 0.4, 0.56, 0.8, 1.0, 1.4, 2.0, 2.8, 4.0,
)  # fmt: skip
# A whole request lasts as long as its answer: 10 ms to almost 5 minutes.
DURATION_BUCKETS: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.056, 0.08, 0.1, 0.14, 0.2, 0.28, 0.4, 0.56, 0.8, 1.0, 1.4, 2.0, 2.8,
    4.0, 5.6, 8.0, 10.0, 14.0, 20.0, 28.0, 40.0, 56.0, 80.0, 100.0, 140.0, 200.0, 280.0,
)  # fmt: skip
BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _per_priority(
    name: str,
    type_: MetricType,
    help_: str,
    *,
    unit: str,
    label: str = "",
    vocabulary: tuple[str, ...] = (),
    buckets: tuple[float, ...] = (),
    source: str = "",
) -> MetricDef:
    """A family by `model` and `priority`, then an optional `label` with its `vocabulary`;
    the latency histograms among them carry the request's trace id as an exemplar."""
    labels, values = ("model", "priority"), {"priority": PRIORITIES}
    if label:
        labels, values = (*labels, label), {**values, label: vocabulary}
    return MetricDef(
        name, type_, help_, unit=unit, labels=labels, values=values, buckets=buckets,
        exemplar=type_ == "histogram", source=source,
    )  # fmt: skip


_STATS = "backend.stats() at scrape time"

REQUESTS = _per_priority(
    "inferwatch_requests_total", "counter", "Finished requests by outcome.",
    unit="requests", label="outcome", vocabulary=OUTCOMES,
)  # fmt: skip
REJECTIONS = _per_priority(
    "inferwatch_request_rejections_total", "counter", "Requests refused, by reason.",
    unit="requests", label="reason", vocabulary=REJECTION_REASONS,
)  # fmt: skip
TIME_TO_FIRST_TOKEN = _per_priority(
    "inferwatch_time_to_first_token_seconds", "histogram", "Arrival to first token.",
    unit="seconds", buckets=LATENCY_BUCKETS,
)  # fmt: skip
INTER_TOKEN_LATENCY = _per_priority(
    "inferwatch_inter_token_latency_seconds", "histogram", "Gap between consecutive tokens.",
    unit="seconds", buckets=INTER_TOKEN_BUCKETS,
)  # fmt: skip
REQUEST_DURATION = _per_priority(
    "inferwatch_request_duration_seconds", "histogram", "Arrival to last token.",
    unit="seconds", buckets=DURATION_BUCKETS,
)  # fmt: skip
QUEUE_WAIT = _per_priority(
    "inferwatch_queue_wait_seconds", "histogram", "Arrival to first scheduled.",
    unit="seconds", buckets=LATENCY_BUCKETS,
)  # fmt: skip
PROMPT_TOKENS = _per_priority(
    "inferwatch_prompt_tokens_total", "counter", "Prompt tokens of finished requests.",
    unit="tokens",
)  # fmt: skip
GENERATION_TOKENS = _per_priority(
    "inferwatch_generation_tokens_total", "counter", "Generated tokens of finished requests.",
    unit="tokens",
)  # fmt: skip
QUEUE_DEPTH = _per_priority(
    "inferwatch_queue_depth", "gauge", "Requests waiting now.", unit="requests", source=_STATS
)
QUEUE_OLDEST_WAIT = _per_priority(
    "inferwatch_queue_oldest_wait_seconds", "gauge", "Age of the oldest waiting request.",
    unit="seconds", source=_STATS,
)  # fmt: skip
REQUESTS_RUNNING = MetricDef(
    "inferwatch_requests_running", "gauge", "Sequences in the running batch.",
    unit="sequences", labels=("model",), source=_STATS,
)  # fmt: skip
# The sum of inferwatch_queue_depth over priorities, for readers that cannot sum (an endpoint
# picker reads one series per name).
REQUESTS_WAITING = MetricDef(
    "inferwatch_requests_waiting", "gauge", "Requests waiting now, every priority together.",
    unit="requests", labels=("model",), source=_STATS,
)  # fmt: skip
ENGINE_STEP_DURATION = MetricDef(
    "inferwatch_engine_step_duration_seconds", "histogram", "One scheduler step, by phase.",
    unit="seconds", labels=("model", "phase"), values={"phase": STEP_PHASES},
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
BATCH_SIZE = MetricDef(
    "inferwatch_batch_size", "histogram", "Sequences per scheduler step.",
    unit="sequences", labels=("model",), buckets=BATCH_SIZE_BUCKETS,
)  # fmt: skip
DEGRADATION_LEVEL = MetricDef(
    "inferwatch_degradation_level", "gauge", "Degradation level: 0 = normal.",
    unit="level", labels=("model",),
)  # fmt: skip
DEGRADATION_TRANSITIONS = MetricDef(
    "inferwatch_degradation_transitions_total", "counter", "Degradation level changes.",
    unit="transitions", labels=("model", "direction", "trigger"),
    values={"direction": DEGRADATION_DIRECTIONS, "trigger": DEGRADATION_TRIGGERS},
)  # fmt: skip
CONCURRENCY_LIMIT = _per_priority(
    "inferwatch_admission_concurrency_limit", "gauge",
    "In-flight KV tokens (prompt + max_tokens) of this priority and the more important ones "
    "past which this priority is refused.",
    unit="tokens", source="the admission gate at scrape time (the engine's whole capacity "
    "without adaptive admission)",
)  # fmt: skip
ALERT_NOTIFICATIONS = MetricDef(
    "inferwatch_alert_notifications_total", "counter", "Alertmanager webhook calls received.",
    unit="calls", labels=("status",), values={"status": NOTIFICATION_STATUSES},
)  # fmt: skip
BUILD_INFO = MetricDef(
    "inferwatch_build_info", "info", "What is running (value 1).",
    labels=("version", "backend", "device"), source="at start",
)  # fmt: skip
HTTP_RESPONSES = MetricDef(
    "inferwatch_http_responses_total", "counter",
    "HTTP answers as the client saw them, by route, status class and reason: 4xx and "
    "pre-engine 5xx included; a stream whose error arrived in-band counts as 5xx.",
    unit="responses", labels=("route", "status_class", "reason"),
    values={"status_class": STATUS_CLASSES, "reason": RESPONSE_REASONS},
    source="the API, when an answer ends (route: the app's route template, or other)",
)  # fmt: skip

# Only for a backend with a KV cache (`BackendStats.kv`); a proxy backend has none of these.
_KV_SOURCE = "backend.stats().kv at scrape time"
KV_CACHE_USAGE = MetricDef(
    "inferwatch_kv_cache_usage_ratio", "gauge", "Used KV blocks / total.",
    unit="ratio", labels=("model",), source=_KV_SOURCE,
)  # fmt: skip
KV_CACHE_BLOCKS = MetricDef(
    "inferwatch_kv_cache_blocks", "gauge", "KV blocks by state.",
    unit="blocks", labels=("model", "state"), values={"state": KV_BLOCK_STATES},
    source=_KV_SOURCE,
)  # fmt: skip
PREFIX_CACHE_QUERIES = MetricDef(
    "inferwatch_prefix_cache_queries_total", "counter",
    "Prompt tokens looked up in the prefix cache.",
    unit="tokens", labels=("model",), source=_KV_SOURCE,
)  # fmt: skip
PREFIX_CACHE_HITS = MetricDef(
    "inferwatch_prefix_cache_hits_total", "counter", "Prompt tokens found in the prefix cache.",
    unit="tokens", labels=("model",), source=_KV_SOURCE,
)  # fmt: skip
PREEMPTIONS = _per_priority(
    "inferwatch_preemptions_total", "counter", "Sequences preempted for KV space.",
    unit="sequences", source=_KV_SOURCE,
)  # fmt: skip
KV_CACHE_INFO = MetricDef(
    "inferwatch_kv_cache_info", "info", "KV cache configuration (value 1).",
    labels=("model", "block_size", "num_blocks", "dtype", "device"), source=_KV_SOURCE,
)  # fmt: skip

# Only for a backend that fronts replicas (`BackendStats.upstreams`, `serve --upstream`): one
# series per configured upstream, its base URL as the label (the operator's configuration,
# never a client's text).
_UPSTREAM_SOURCE = "backend.stats().upstreams at scrape time"


def _per_upstream(name: str, help_: str, unit: str) -> MetricDef:
    return MetricDef(
        name, "gauge", help_, unit=unit, labels=("model", "upstream"), source=_UPSTREAM_SOURCE
    )


UPSTREAM_UP = _per_upstream(
    "inferwatch_upstream_up",
    "1 while the upstream is in rotation, 0 while its checks fail or after a request found it "
    "dead.",
    "boolean",
)
UPSTREAM_WAITING = _per_upstream(
    "inferwatch_upstream_requests_waiting",
    "The upstream's own waiting requests (vllm:num_requests_waiting), every client's, at its "
    "last good /metrics reading.",
    "requests",
)
UPSTREAM_RUNNING = _per_upstream(
    "inferwatch_upstream_requests_running",
    "The upstream's own running requests (vllm:num_requests_running), every client's, at its "
    "last good /metrics reading.",
    "requests",
)
UPSTREAM_OUTSTANDING = _per_upstream(
    "inferwatch_upstream_outstanding_requests",
    "This service's requests on the upstream now, sent and not yet ended.",
    "requests",
)

SERVICE_FAMILIES: tuple[MetricDef, ...] = (
    REQUESTS, REJECTIONS, TIME_TO_FIRST_TOKEN, INTER_TOKEN_LATENCY, REQUEST_DURATION,
    QUEUE_WAIT, PROMPT_TOKENS, GENERATION_TOKENS, QUEUE_DEPTH, QUEUE_OLDEST_WAIT,
    REQUESTS_RUNNING, REQUESTS_WAITING, ENGINE_STEP_DURATION, BATCH_SIZE, DEGRADATION_LEVEL,
    DEGRADATION_TRANSITIONS, CONCURRENCY_LIMIT, ALERT_NOTIFICATIONS, BUILD_INFO,
    HTTP_RESPONSES,
)  # fmt: skip
KV_CACHE_FAMILIES: tuple[MetricDef, ...] = (
    KV_CACHE_USAGE, KV_CACHE_BLOCKS, PREFIX_CACHE_QUERIES, PREFIX_CACHE_HITS, PREEMPTIONS,
    KV_CACHE_INFO,
)  # fmt: skip

UPSTREAM_FAMILIES: tuple[MetricDef, ...] = (
    UPSTREAM_UP, UPSTREAM_WAITING, UPSTREAM_RUNNING, UPSTREAM_OUTSTANDING,
)  # fmt: skip

CATALOG: tuple[MetricDef, ...] = (
    *SERVICE_FAMILIES, *KV_CACHE_FAMILIES, *UPSTREAM_FAMILIES, *EXPORTER_FAMILIES,
)  # fmt: skip


def metric_names(catalog: tuple[MetricDef, ...] = CATALOG) -> frozenset[str]:
    """Every exported family name (counters with `_total`, histograms without suffix)."""
    return frozenset(d.name for d in catalog)
