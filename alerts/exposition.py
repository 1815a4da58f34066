"""What the service exports, as the rules assume it: label vocabularies, bucket layouts, scrape.

alerts/ imports nothing of inference/, so the facts the rules (and their synthetic raw series)
depend on are stated here once; tests/alerts/test_exposition.py checks them against
inference/telemetry/catalog.py and deploy/topology.py, so a change there fails a test here
instead of leaving the promtool cases replaying series the service no longer exports.
"""

from __future__ import annotations

import math

PRIORITIES = ("premium", "standard", "batch")
OUTCOMES = ("completed", "rejected", "failed", "cancelled")
# Served requests: the engine ran them to an end it chose. Refusals never reached it and a
# cancellation is the client's end, so neither is in a served population.
SERVED = ("completed", "failed")
# Every refusal reason the service gives (the catalog's REJECTION_REASONS, each in one place;
# tests/alerts/test_exposition.py checks). The service's doing burns the availability SLO: no
# capacity (queue_full, concurrency_limit), the controller's shedding, the breaker, a class
# deadline the service did not meet, a replica going away. The client's doing does not: a key
# over its own rate, a prompt that can never fit, a missing key, a priority the key may not use.
SERVER_REFUSALS = (
    "queue_full", "shed", "circuit_open", "concurrency_limit", "deadline_exceeded",
    "shutting_down",
)  # fmt: skip
CLIENT_REFUSALS = ("rate_limited", "prompt_too_long", "invalid_api_key", "priority_not_allowed")
REFUSAL_REASONS = (*SERVER_REFUSALS, *CLIENT_REFUSALS)
# What the synthetic raw series replay: the original five. A reason no case refuses for is a
# zero series, which changes no sum, only promtool's running time.
REPLAYED_REFUSALS = ("queue_full", "shed", "circuit_open", "rate_limited", "prompt_too_long")
# inferwatch_http_responses_total: 5xx answers for requests the engine never saw, so neither
# inferwatch_requests_total nor the rejections count them (the backend not running, a server
# bug, an HTTP error before the app). Refusals and generation_failed/shutdown answers are
# counted there already and are left out here, so nothing is counted twice.
HTTP_RESPONSES = "inferwatch_http_responses_total"
PRE_ENGINE_FAILURES = ("engine_unavailable", "internal", "http_error")
SCRAPE_INTERVAL_S = 15  # deploy/topology.py: what the realistic promtool cases sample at

# Each decade holds 1, 1.4, 2, 2.8, 4, 5.6, 8 (steps of at most 1.43, about sqrt(2)); the lowest
# decade skips 1.4 and 2.8. Static thresholds sit on these bounds (tests/alerts checks it).
_DECADE = (1.0, 1.4, 2.0, 2.8, 4.0, 5.6, 8.0)
_LOW_DECADE = (1.0, 2.0, 4.0, 5.6, 8.0)


def geometric_layout(low: float, high: float, *, fine_low: bool = False) -> tuple[float, ...]:
    """Bounds from `low` (a power of ten) to `high`, the decade pattern above; `fine_low` keeps
    the full pattern in the lowest decade too."""
    exponent = round(math.log10(low))
    bounds: list[float] = []
    mantissas = _DECADE if fine_low else _LOW_DECADE
    while True:
        for mantissa in mantissas:
            bound = float(f"{mantissa * 10.0**exponent:.6g}")
            if bound > high * (1 + 1e-9):
                return tuple(bounds)
            bounds.append(bound)
        exponent += 1
        mantissas = _DECADE


# Time to first token, queue wait and engine steps: 1 ms to 28 s (30 bounds).
LATENCY_BUCKETS = geometric_layout(0.001, 28)
# Inter-token latency: 1 ms to 4 s, fine from the first bucket (26 bounds).
INTER_TOKEN_BUCKETS = geometric_layout(0.001, 4, fine_low=True)
# Whole requests: 10 ms to 280 s (30 bounds); their length follows the answer's.
DURATION_BUCKETS = geometric_layout(0.01, 280)

TTFT = "inferwatch_time_to_first_token_seconds"
INTER_TOKEN = "inferwatch_inter_token_latency_seconds"
DURATION = "inferwatch_request_duration_seconds"
QUEUE_WAIT = "inferwatch_queue_wait_seconds"
QUEUE_DEPTH = "inferwatch_queue_depth"
REQUESTS = "inferwatch_requests_total"
REJECTIONS = "inferwatch_request_rejections_total"

HISTOGRAM_BUCKETS: dict[str, tuple[float, ...]] = {
    TTFT: LATENCY_BUCKETS,
    QUEUE_WAIT: LATENCY_BUCKETS,
    INTER_TOKEN: INTER_TOKEN_BUCKETS,
    DURATION: DURATION_BUCKETS,
}
