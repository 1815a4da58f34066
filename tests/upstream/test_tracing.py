"""One trace holds inferwatch's server span and vLLM's own span: inferwatch sends the server
span's `traceparent` to vLLM, and vLLM (started with --otlp-traces-endpoint) exports its
request span under it. Both export over OTLP/HTTP to a loopback sink (tests/support/otlp_sink)
that stands in for Jaeger."""

from __future__ import annotations

import secrets

import httpx

from tests.support.otlp_sink import OtlpSink
from tests.support.waiting import wait_until
from tests.upstream.processes import SERVED_NAME, Server


def test_vllms_span_joins_the_requests_trace(front: Server, otlp_sink: OtlpSink) -> None:
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{parent}-01"}
    body = {"model": SERVED_NAME, "messages": [{"role": "user", "content": "trace"}],
            "max_tokens": 6}  # fmt: skip
    response = httpx.post(
        front.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=60
    )
    assert response.status_code == 200

    def both_exported() -> bool:
        services = {s.service for s in otlp_sink.of_trace(trace_id)}
        return "inferwatch" in services and len(services) >= 2

    assert wait_until(both_exported, timeout=30, interval=0.1), otlp_sink.of_trace(trace_id)
    spans = otlp_sink.of_trace(trace_id)
    ours = [s for s in spans if s.service == "inferwatch"]
    server = [s for s in ours if s.parent_span_id == parent]
    assert len(server) == 1  # the server span, child of the caller's span
    theirs = [s for s in spans if s.service != "inferwatch"]
    # vLLM's span hangs under inferwatch's server span: the traceparent inferwatch sent.
    assert {s.parent_span_id for s in theirs} <= {s.span_id for s in ours}
    assert any(s.parent_span_id == server[0].span_id for s in theirs)
