"""Where a request's end becomes telemetry: metrics, phase spans, GenAI attributes, one log line.

Everything is recorded once, when the request is over, from `RequestTimes`; the hot path of
token delivery stays free of telemetry work. With telemetry off, only the log line remains.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from inference.backend import RequestTimes
from inference.telemetry.logs import REQUEST_LOGGER
from inference.telemetry.metrics import ServiceMetrics
from inference.telemetry.tracing import record_phase_spans, trace_id_of

log = logging.getLogger(REQUEST_LOGGER)


@dataclass
class RequestRecord:
    """What the API knows about one request, filled in as it goes."""

    request_id: str
    model: str
    priority: str
    operation: str  # "text_completion" or "chat"
    max_tokens: int | None = None
    span: Span = field(default_factory=trace.get_current_span)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    times: RequestTimes | None = None
    prompt_text: str | None = None
    completion_text: str | None = None

    @property
    def trace_id(self) -> str | None:
        return trace_id_of(self.span)

    @property
    def queue_ms(self) -> float | None:
        t = self.times
        return (
            None if t is None or t.first_scheduled is None else _ms(t.first_scheduled - t.arrival)
        )

    @property
    def ttft_ms(self) -> float | None:
        t = self.times
        return None if t is None or t.first_token is None else _ms(t.first_token - t.arrival)

    @property
    def total_ms(self) -> float | None:
        t = self.times
        return None if t is None or t.finished is None else _ms(t.finished - t.arrival)


class RequestRecorder:
    """Records finished requests; `metrics`/`tracer` None means telemetry is off."""

    def __init__(
        self,
        metrics: ServiceMetrics | None,
        tracer: trace.Tracer | None,
        *,
        log_prompts: bool = False,
    ) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self.log_prompts = log_prompts

    def rejected(self, record: RequestRecord, reason: str, status: int) -> None:
        if self.metrics is not None:
            self.metrics.record_rejection(record.priority, reason)
        if self.tracer is not None and record.span.is_recording():
            record.span.set_attribute("inferwatch.rejection_reason", reason)
            self._annotate(record, "rejected")
        self._log(record, "rejected", status=status, reason=reason)

    def finished(
        self, record: RequestRecord, outcome: str, status: int, error: str | None = None
    ) -> None:
        """`error` is the internal detail of a failure: logged and on the span, never sent."""
        trace_id = record.trace_id
        if self.metrics is not None:
            exemplar = {"trace_id": trace_id} if trace_id else None
            self.metrics.record_finished(
                record.priority,
                outcome,
                record.times,
                record.prompt_tokens,
                record.completion_tokens,
                exemplar,
            )
        if self.tracer is not None and record.span.is_recording():
            self._annotate(record, outcome, error)
            if record.times is not None:
                record_phase_spans(
                    self.tracer, record.span, record.times, failed=outcome == "failed"
                )
        if error is not None:
            self._log(record, outcome, status=status, error=error)
        else:
            self._log(record, outcome, status=status)

    def _annotate(self, record: RequestRecord, outcome: str, error: str | None = None) -> None:
        """GenAI semantic-convention attributes on the server span."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": record.operation,
            "gen_ai.provider.name": "inferwatch",
            "gen_ai.request.model": record.model,
            "gen_ai.response.model": record.model,
            "gen_ai.usage.input_tokens": record.prompt_tokens,
            "gen_ai.usage.output_tokens": record.completion_tokens,
            "inferwatch.priority": record.priority,
            "inferwatch.request_id": record.request_id,
            "inferwatch.outcome": outcome,
        }
        if record.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = record.max_tokens
        if record.finish_reason is not None:
            attributes["gen_ai.response.finish_reasons"] = [record.finish_reason]
        if self.log_prompts:
            if record.prompt_text is not None:
                attributes["gen_ai.prompt"] = record.prompt_text
            if record.completion_text is not None:
                attributes["gen_ai.completion"] = record.completion_text
        record.span.set_attributes(attributes)
        if outcome == "failed":
            record.span.set_status(Status(StatusCode.ERROR, error or "generation failed"))

    def _log(self, record: RequestRecord, outcome: str, **extra: Any) -> None:
        fields: dict[str, Any] = {
            "request_id": record.request_id,
            "trace_id": record.trace_id,
            "model": record.model,
            "priority": record.priority,
            "outcome": outcome,
            "finish_reason": record.finish_reason,
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
            "queue_ms": record.queue_ms,
            "ttft_ms": record.ttft_ms,
            "total_ms": record.total_ms,
            **extra,
        }
        if self.log_prompts:
            fields["prompt"] = record.prompt_text
            fields["completion"] = record.completion_text
        log.info("request finished", extra={"fields": fields})


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)
