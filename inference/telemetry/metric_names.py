"""The service and engine metric families, as METRICS.md names them.

Kept in code (not parsed at run time) so the service does not depend on the design folder; a
test checks that this list equals the METRICS.md table and that `/metrics` exports every name.
"""

from __future__ import annotations

SERVICE_METRIC_NAMES: tuple[str, ...] = (
    "inferwatch_requests_total",
    "inferwatch_request_rejections_total",
    "inferwatch_time_to_first_token_seconds",
    "inferwatch_inter_token_latency_seconds",
    "inferwatch_request_duration_seconds",
    "inferwatch_queue_wait_seconds",
    "inferwatch_prompt_tokens_total",
    "inferwatch_generation_tokens_total",
    "inferwatch_queue_depth",
    "inferwatch_queue_oldest_wait_seconds",
    "inferwatch_requests_running",
    "inferwatch_engine_step_duration_seconds",
    "inferwatch_batch_size",
    "inferwatch_kv_cache_usage_ratio",
    "inferwatch_kv_cache_blocks",
    "inferwatch_prefix_cache_queries_total",
    "inferwatch_prefix_cache_hits_total",
    "inferwatch_preemptions_total",
    "inferwatch_kv_cache_info",
    "inferwatch_degradation_level",
    "inferwatch_degradation_transitions_total",
    "inferwatch_admission_concurrency_limit",
    "inferwatch_alert_notifications_total",
    "inferwatch_build_info",
)

OUTCOMES: tuple[str, ...] = ("completed", "rejected", "failed", "cancelled")
REJECTION_REASONS: tuple[str, ...] = (
    "queue_full",
    "shed",
    "rate_limited",
    "circuit_open",
    "prompt_too_long",
)
STEP_PHASES: tuple[str, ...] = ("prefill", "decode", "mixed")
DEGRADATION_DIRECTIONS: tuple[str, ...] = ("up", "down")
DEGRADATION_TRIGGERS: tuple[str, ...] = ("local", "alertmanager", "manual")
NOTIFICATION_STATUSES: tuple[str, ...] = ("accepted", "duplicate", "unauthorized", "invalid")
