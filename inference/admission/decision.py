"""The admission decision on the request's server span: the level it met and what was done.

Admission runs inside the request's own context, so the current span is the request's server
span; only fixed vocabulary and numbers go on it (a tenant only from the key file)."""

from __future__ import annotations

from opentelemetry import trace

ADMITTED = "admitted"
CAPPED = "capped"  # admitted with max_tokens lowered by the level or the class


def annotate_tenant(name: str) -> None:
    """The tenant of the request's API key (a name from the key file, never client text)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("inferwatch.tenant", name)


def annotate(level: int, decision: str, *, max_tokens: int | None = None) -> None:
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attribute("inferwatch.degradation_level", level)
    span.set_attribute("inferwatch.admission.decision", decision)
    if max_tokens is not None:
        span.set_attribute("inferwatch.admission.max_tokens", max_tokens)
