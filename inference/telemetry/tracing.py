"""Tracer set-up and the per-request `queue` / `prefill` / `decode` child spans.

The engine works on its own thread, so no span is open while a request waits or decodes.
Instead the handler keeps its server span and, when the request is over, creates the three
children retroactively with explicit start and end times taken from `RequestTimes`: nothing
crosses threads and the tree is exact.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode

from inference.backend import RequestTimes, wall_ns

OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
SEMCONV_OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"


def prefer_stable_http_semconv() -> None:
    """Server spans carry the stable HTTP conventions (`http.request.method`, `url.path`,
    `http.response.status_code`, ...) rather than the deprecated set, which is twice as many
    attributes to record and export per request. An operator's own OTEL_SEMCONV_STABILITY_OPT_IN
    (e.g. `http/dup` for both) wins; the instrumentation reads it once per process."""
    os.environ.setdefault(SEMCONV_OPT_IN_ENV, "http")


def build_tracer_provider(service_version: str) -> TracerProvider:
    """A provider with the sampler from OTEL_TRACES_SAMPLER(_ARG) (the SDK reads them when no
    sampler is passed) and OTLP/HTTP export only when an endpoint is configured."""
    resource = Resource.create({"service.name": "inferwatch", "service.version": service_version})
    provider = TracerProvider(resource=resource)
    if os.environ.get(OTLP_ENDPOINT_ENV):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def trace_id_of(span: Span) -> str | None:
    """32-hex trace id of a span that is sampled, else None (exemplars must link to a trace)."""
    ctx = span.get_span_context()
    if not ctx.is_valid or not ctx.trace_flags.sampled:
        return None
    return format(ctx.trace_id, "032x")


def record_phase_spans(
    tracer: trace.Tracer, parent: Span, times: RequestTimes, *, failed: bool = False
) -> None:
    """Children of `parent`: queue (arrival..scheduled), prefill (..first token), decode (..end).

    A phase the request never reached is left out; a preemption becomes a `preempted` event
    on the phase span that contains it.
    """
    if not parent.is_recording():
        return
    end = times.finished if times.finished is not None else _latest(times)
    ctx = trace.set_span_in_context(parent)
    phases: list[tuple[str, float, float]] = []
    scheduled = times.first_scheduled
    phases.append(("queue", times.arrival, scheduled if scheduled is not None else end))
    if scheduled is not None:
        first = times.first_token
        phases.append(("prefill", scheduled, first if first is not None else end))
        if first is not None:
            phases.append(("decode", first, end))
    for index, (name, start, stop) in enumerate(phases):
        stop = max(stop, start)
        span = tracer.start_span(name, context=ctx, start_time=wall_ns(start))
        last = index == len(phases) - 1
        for t in _events_in(times.preempted, start, stop, include_end=last):
            span.add_event("preempted", timestamp=wall_ns(t))
        if failed and last:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=wall_ns(stop))


def _events_in(
    moments: Sequence[float], start: float, stop: float, *, include_end: bool
) -> list[float]:
    return [t for t in moments if start <= t < stop or (include_end and t >= stop)]


def _latest(times: RequestTimes) -> float:
    candidates = [times.arrival, times.first_scheduled, times.first_token, *times.token_times]
    return max(t for t in candidates if t is not None)
