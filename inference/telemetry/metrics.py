"""The service's own metric families (docs/metrics.md "Service and engine"), on a per-app
registry; each is built from its entry in inference/telemetry/catalog.py.

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

from exporters.catalog import MetricDef
from inference.backend import RequestTimes, StepStats
from inference.telemetry import catalog
from inference.telemetry.batch_histogram import BatchHistogram
from inference.telemetry.catalog import (
    DEGRADATION_DIRECTIONS,
    DEGRADATION_TRIGGERS,
    NOTIFICATION_STATUSES,
    OUTCOMES,
    PRIORITIES,
    REJECTION_REASONS,
    STEP_PHASES,
)
from inference.telemetry.catalog import LATENCY_BUCKETS as LATENCY_BUCKETS  # re-export


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
        self.requests = _counter(catalog.REQUESTS, registry)
        self.rejections = _counter(catalog.REJECTIONS, registry)
        self.ttft = _histogram(catalog.TIME_TO_FIRST_TOKEN, registry)
        self.itl = BatchHistogram(
            *_named(catalog.INTER_TOKEN_LATENCY, "histogram"),
            buckets=catalog.INTER_TOKEN_LATENCY.buckets,
            registry=registry,
        )
        self.duration = _histogram(catalog.REQUEST_DURATION, registry)
        self.queue_wait = _histogram(catalog.QUEUE_WAIT, registry)
        self.prompt_tokens = _counter(catalog.PROMPT_TOKENS, registry)
        self.generation_tokens = _counter(catalog.GENERATION_TOKENS, registry)
        self.step_duration = _histogram(catalog.ENGINE_STEP_DURATION, registry)
        self.batch_size = _histogram(catalog.BATCH_SIZE, registry)
        self.degradation_level = _gauge(catalog.DEGRADATION_LEVEL, registry)
        self.degradation_transitions = _counter(catalog.DEGRADATION_TRANSITIONS, registry)
        self.concurrency_limit = _gauge(catalog.CONCURRENCY_LIMIT, registry)
        self.alert_notifications = _counter(catalog.ALERT_NOTIFICATIONS, registry)
        self.http_responses = _counter(catalog.HTTP_RESPONSES, registry)
        build_info = _gauge(catalog.BUILD_INFO, registry)
        build_info.labels(version, backend, device).set(1)
        self.degradation_level.labels(model).set(0)
        for priority in PRIORITIES:  # KV tokens; the admission gate replaces these live
            self.concurrency_limit.labels(model, priority).set(concurrency_limit)
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

    def known_routes(self, routes: Sequence[str]) -> None:
        """A 0 for each route's success before its first answer (rate() needs a series)."""
        for route in (*routes, catalog.OTHER_ROUTE):
            self.http_responses.labels(route, "2xx", "ok")

    def record_response(self, route: str, status_class: str, reason: str) -> None:
        self.http_responses.labels(route, status_class, reason).inc()

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


def _named(d: MetricDef, expected: str) -> tuple[str, str, tuple[str, ...]]:
    """(name, help, labels) of a definition, refusing one of another type: an instrument of
    the wrong kind would export a TYPE the catalog (and docs/metrics.md) does not say."""
    if d.exposed_type != expected:
        raise TypeError(f"{d.name} is a {d.type}, not a {expected}")
    return d.name, d.help, d.labels


def _counter(d: MetricDef, registry: CollectorRegistry) -> Counter:
    return Counter(*_named(d, "counter"), registry=registry)


def _gauge(d: MetricDef, registry: CollectorRegistry) -> Gauge:
    return Gauge(*_named(d, "gauge"), registry=registry)


def _histogram(d: MetricDef, registry: CollectorRegistry) -> Histogram:
    return Histogram(*_named(d, "histogram"), buckets=d.buckets, registry=registry)


def _last(values: Sequence[float]) -> float | None:
    return values[-1] if values else None
