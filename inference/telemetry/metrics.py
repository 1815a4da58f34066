"""The service's own metric families (METRICS.md "Service and engine"), on a per-app registry.

Event metrics (requests, latencies, tokens, steps) live here; live engine state (queue depth,
KV usage, ...) is read at scrape time by `inference.telemetry.engine_state.QueueSource`
instead. Every fixed label combination is created up front so dashboards and `rate()` see a 0
before the first event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from inference.backend import Priority, RequestTimes, StepStats
from inference.telemetry.batch_histogram import BatchHistogram
from inference.telemetry.metric_names import (
    DEGRADATION_DIRECTIONS,
    DEGRADATION_TRIGGERS,
    NOTIFICATION_STATUSES,
    OUTCOMES,
    REJECTION_REASONS,
    STEP_PHASES,
)

# From 1 ms: fast deployments otherwise read every p99 as the first bucket.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
    0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0,
)  # fmt: skip
DURATION_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0,
    60.0, 120.0, 180.0, 300.0,
)  # fmt: skip
BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)

PRIORITIES: tuple[str, ...] = tuple(p.value for p in Priority)


@dataclass(frozen=True)
class _PriorityChildren:
    """One priority's labelled children, looked up once: `labels()` takes a lock and builds a
    key on every call, and a finished request would otherwise make seven such calls."""

    requests: dict[str, Counter]  # by outcome
    prompt_tokens: Counter
    generation_tokens: Counter
    queue_wait: Histogram
    ttft: Histogram
    duration: Histogram


class ServiceMetrics:
    """Event-driven families for one served model; `exemplar` is a sampled trace id or None."""

    def __init__(
        self,
        registry: CollectorRegistry,
        model: str,
        *,
        version: str,
        backend: str,
        device: str,
        concurrency_limit: int,
    ) -> None:
        self.model = model
        mp = ["model", "priority"]
        self.requests = Counter(
            "inferwatch_requests_total", "Finished requests by outcome.",
            ["model", "priority", "outcome"], registry=registry,
        )  # fmt: skip
        self.rejections = Counter(
            "inferwatch_request_rejections_total", "Requests refused, by reason.",
            ["model", "priority", "reason"], registry=registry,
        )  # fmt: skip
        self.ttft = Histogram(
            "inferwatch_time_to_first_token_seconds", "Arrival to first token.", mp,
            buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.itl = BatchHistogram(
            "inferwatch_inter_token_latency_seconds", "Gap between consecutive tokens.", mp,
            buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.duration = Histogram(
            "inferwatch_request_duration_seconds", "Arrival to last token.", mp,
            buckets=DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "inferwatch_queue_wait_seconds", "Arrival to first scheduled.", mp,
            buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.prompt_tokens = Counter(
            "inferwatch_prompt_tokens_total", "Prompt tokens of finished requests.", mp,
            registry=registry,
        )  # fmt: skip
        self.generation_tokens = Counter(
            "inferwatch_generation_tokens_total", "Generated tokens of finished requests.", mp,
            registry=registry,
        )  # fmt: skip
        self.step_duration = Histogram(
            "inferwatch_engine_step_duration_seconds", "One scheduler step, by phase.",
            ["model", "phase"], buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.batch_size = Histogram(
            "inferwatch_batch_size", "Sequences per scheduler step.", ["model"],
            buckets=BATCH_SIZE_BUCKETS, registry=registry,
        )  # fmt: skip
        self.degradation_level = Gauge(
            "inferwatch_degradation_level", "Degradation level: 0 = normal.", ["model"],
            registry=registry,
        )  # fmt: skip
        self.degradation_transitions = Counter(
            "inferwatch_degradation_transitions_total", "Degradation level changes.",
            ["model", "direction", "trigger"], registry=registry,
        )  # fmt: skip
        self.concurrency_limit = Gauge(
            "inferwatch_admission_concurrency_limit", "Current in-flight request limit.",
            ["model"], registry=registry,
        )  # fmt: skip
        self.alert_notifications = Counter(
            "inferwatch_alert_notifications_total", "Alertmanager webhook calls received.",
            ["status"], registry=registry,
        )  # fmt: skip
        build_info = Gauge(
            "inferwatch_build_info", "What is running (value 1).",
            ["version", "backend", "device"], registry=registry,
        )  # fmt: skip
        build_info.labels(version, backend, device).set(1)
        self.degradation_level.labels(model).set(0)
        self.concurrency_limit.labels(model).set(concurrency_limit)
        self._preinitialise()

    def _preinitialise(self) -> None:
        m = self.model
        self._children: dict[str, _PriorityChildren] = {}
        for p in PRIORITIES:
            for reason in REJECTION_REASONS:
                self.rejections.labels(m, p, reason)
            self.itl.labels(m, p)
            self._children[p] = _PriorityChildren(
                requests={outcome: self.requests.labels(m, p, outcome) for outcome in OUTCOMES},
                prompt_tokens=self.prompt_tokens.labels(m, p),
                generation_tokens=self.generation_tokens.labels(m, p),
                queue_wait=self.queue_wait.labels(m, p),
                ttft=self.ttft.labels(m, p),
                duration=self.duration.labels(m, p),
            )
        for phase in STEP_PHASES:
            self.step_duration.labels(m, phase)
        self.batch_size.labels(m)
        for direction in DEGRADATION_DIRECTIONS:
            for trigger in DEGRADATION_TRIGGERS:
                self.degradation_transitions.labels(m, direction, trigger)
        for status in NOTIFICATION_STATUSES:
            self.alert_notifications.labels(status)

    def record_rejection(self, priority: str, reason: str) -> None:
        self.rejections.labels(self.model, priority, reason).inc()
        self._children[priority].requests["rejected"].inc()

    def record_finished(
        self,
        priority: str,
        outcome: str,
        times: RequestTimes | None,
        prompt_tokens: int,
        completion_tokens: int,
        exemplar: dict[str, str] | None,
    ) -> None:
        children = self._children[priority]
        children.requests[outcome].inc()
        children.prompt_tokens.inc(prompt_tokens)
        children.generation_tokens.inc(completion_tokens)
        if times is None:
            return
        if times.first_scheduled is not None:
            children.queue_wait.observe(times.first_scheduled - times.arrival, exemplar)
        if times.first_token is not None:
            children.ttft.observe(times.first_token - times.arrival, exemplar)
        gaps = [later - earlier for earlier, later in pairwise(times.token_times)]
        self.itl.observe_many((self.model, priority), gaps, exemplar)
        end = times.finished if times.finished is not None else _last(times.token_times)
        if end is not None and outcome == "completed":
            children.duration.observe(end - times.arrival, exemplar)

    def observe_step(self, step: StepStats) -> None:
        """Step listener: runs on the engine thread; prometheus-client children are thread-safe."""
        self.step_duration.labels(self.model, step.phase).observe(step.duration_seconds)
        self.batch_size.labels(self.model).observe(step.batch_size)


def _last(values: Sequence[float]) -> float | None:
    return values[-1] if values else None
