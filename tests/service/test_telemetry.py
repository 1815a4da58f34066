"""/metrics against promtool and docs/metrics.md; exemplars that link to the captured traces; the
server > queue/prefill/decode span tree; W3C traceparent; JSON request logs."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import SpanKind

from inference.admission.config import AdmissionConfig
from inference.api.app import create_app
from inference.settings import Settings
from inference.telemetry.catalog import KV_CACHE_FAMILIES, SERVICE_FAMILIES, UPSTREAM_FAMILIES
from inference.telemetry.logs import REQUEST_LOGGER, JsonFormatter
from inference.telemetry.server_span import is_installed, middleware_layers
from tests.support.exposition import exemplar_trace_ids, total
from tests.support.service import MODEL, RunningService, serve, small_engine

REPO = Path(__file__).resolve().parents[2]
METRICS_DOC = REPO / "docs" / "metrics.md"
SERVICE_METRIC_NAMES = [d.name for d in (*SERVICE_FAMILIES, *KV_CACHE_FAMILIES)]
PROMPT = "a secret prompt that must stay private"


def _traffic(service: RunningService, n: int = 2) -> None:
    with service.client() as c:
        for i in range(n):
            stream = i % 2 == 1
            r = c.post(
                "/v1/completions",
                json={"model": MODEL, "prompt": PROMPT, "max_tokens": 4, "stream": stream},
            )
            assert r.status_code == 200


def test_service_families_equal_the_docs_tables() -> None:
    """The committed reference page's service, engine, KV-cache and upstream tables name
    exactly the service catalog (the page is generated from it; `inferwatch generate --check`
    fails on drift)."""
    text = METRICS_DOC.read_text()  # the contract: missing it is a failure, not a skip
    section = text.split("## Service and engine", 1)[1].split("\n## GPU exporter", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        cells = line.split("|")[1:-1]
        if line.startswith("| `") and len(cells) > 2:  # a family row, not a bucket-layout row
            names += re.findall(r"`([a-z_:]+)`", cells[0])
    assert sorted(names) == sorted([*SERVICE_METRIC_NAMES, *(d.name for d in UPSTREAM_FAMILIES)])


def test_exposition_has_every_family_and_passes_promtool(service: RunningService) -> None:
    _traffic(service)
    text = service.metrics_text()
    exported = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    for name in SERVICE_METRIC_NAMES:
        # Classic text drops `_total` from counter family names in # TYPE lines.
        assert name in exported or name.removesuffix("_total") in exported, name
    assert total(text, "inferwatch_build_info") == 1
    assert total(text, "inferwatch_degradation_level") == 0
    # Admission's per-priority limits, in KV tokens: at most twice the cache (256 x 16 tokens).
    for priority in ("premium", "standard", "batch"):
        limit = total(text, "inferwatch_admission_concurrency_limit", priority=priority)
        assert 0 < limit <= 2 * 256 * 16, priority
    # Fixed label sets exist at 0 before the first event.
    assert 'reason="circuit_open"' in text and 'status="unauthorized"' in text
    assert PROMPT not in text
    promtool = shutil.which("promtool")
    assert promtool, "promtool must be installed (make system-deps)"
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result


def test_step_and_token_metrics_follow_traffic(service: RunningService) -> None:
    before = service.metrics_text()
    _traffic(service, n=2)
    after = service.metrics_text()
    for name in ("inferwatch_engine_step_duration_seconds_count", "inferwatch_batch_size_count"):
        assert total(after, name) > total(before, name)
    delta = total(after, "inferwatch_generation_tokens_total") - total(
        before, "inferwatch_generation_tokens_total"
    )
    assert delta == 8
    ttft = total(after, "inferwatch_time_to_first_token_seconds_count", priority="standard")
    assert (
        ttft - total(before, "inferwatch_time_to_first_token_seconds_count", priority="standard")
        == 2
    )


@pytest.fixture
def fresh_service() -> Iterator[RunningService]:
    """A service of its own: no exemplars left over from other tests' requests."""
    thread, app, backend, spans = serve()
    with thread as base_url:
        yield RunningService(app, backend, spans, base_url)


def test_exemplars_link_to_captured_traces_and_span_tree(fresh_service: RunningService) -> None:
    service = fresh_service
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    _traffic(service, n=2)
    with service.client() as c:
        # Last, so its exemplars are the latest in every bucket it lands in.
        r = c.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 3},
            headers={"traceparent": traceparent},
        )
        assert r.status_code == 200
        om = c.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    servers = service.server_spans(3)
    spans = service.spans.get_finished_spans()
    assert len(servers) == 3
    # The client's traceparent is honoured: same trace id, client span as parent.
    chat = next(s for s in servers if s.context.trace_id == int(trace_id, 16))
    assert chat.parent is not None and chat.parent.span_id == 0x00F067AA0BA902B7
    for server in servers:
        children = {
            s.name: s for s in spans if s.parent and s.parent.span_id == server.context.span_id
        }
        assert {"queue", "prefill", "decode"} <= set(children)
        queue, prefill, decode = children["queue"], children["prefill"], children["decode"]
        assert queue.start_time <= queue.end_time <= prefill.end_time <= decode.end_time
        assert decode.end_time <= server.end_time
        attrs = server.attributes or {}
        assert attrs["gen_ai.request.model"] == MODEL
        assert attrs["gen_ai.usage.output_tokens"] in (3, 4)
        assert attrs["gen_ai.response.finish_reasons"] == ("length",)
        assert attrs["inferwatch.priority"] == "standard"
        assert len(str(attrs["inferwatch.request_id"])) == 32
    for span in spans:  # no prompt text in any span by default
        assert all(PROMPT not in str(v) for v in (span.attributes or {}).values())
    exemplar_ids = exemplar_trace_ids(om.text)
    # Every exemplar links to a captured trace, and the last requests' traces are there.
    server_trace_ids = {format(s.context.trace_id, "032x") for s in servers}
    assert trace_id in exemplar_ids
    assert exemplar_ids and exemplar_ids <= server_trace_ids


def test_one_json_log_line_per_request_without_prompt(
    service: RunningService, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=REQUEST_LOGGER):
        _traffic(service, n=2)
    records = [r for r in caplog.records if r.name == REQUEST_LOGGER]
    assert len(records) == 2
    for record in records:
        line = JsonFormatter().format(record)
        assert "\n" not in line and PROMPT not in line
        entry = json.loads(line)
        assert entry["outcome"] == "completed" and entry["finish_reason"] == "length"
        assert entry["completion_tokens"] == 4 and entry["prompt_tokens"] > 0
        assert re.fullmatch(r"[0-9a-f]{32}", entry["trace_id"])
        assert entry["total_ms"] >= entry["ttft_ms"] >= entry["queue_ms"] >= 0
        assert entry["priority"] == "standard" and entry["request_id"]


def test_preemption_becomes_a_span_event() -> None:
    """A KV cache too small for everything running: the engine preempts, the trace shows it.
    Without admission in front, which would refuse what does not fit in the cache."""
    engine_only = Settings(admission=AdmissionConfig(admission_mode="off"))
    thread, _, backend, spans = serve(small_engine(num_kv_blocks=10, max_num_seqs=8), engine_only)
    with thread as base_url, httpx.Client(base_url=base_url, timeout=60) as c:

        def post(priority: str) -> int:
            body = {"prompt": "p" * 20, "max_tokens": 90, "ignore_eos": True, "priority": priority}
            return c.post("/v1/completions", json=body).status_code

        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(post, ["premium", "standard", "batch", "batch"]))
        text = c.get("/metrics").text
    assert statuses == [200] * 4
    preemptions = total(text, "inferwatch_preemptions_total")
    kv = backend.stats().kv
    assert kv is not None
    assert preemptions > 0 and sum(kv.preemptions_by_priority.values()) == preemptions
    events = [e for s in spans.get_finished_spans() for e in s.events if e.name == "preempted"]
    assert len(events) == preemptions


def test_log_prompts_option_puts_text_in_logs_and_spans(caplog: pytest.LogCaptureFixture) -> None:
    thread, _, _, spans = serve(settings=Settings(log_prompts=True))
    with (
        thread as base_url,
        httpx.Client(base_url=base_url, timeout=30) as c,
        caplog.at_level(logging.INFO, logger=REQUEST_LOGGER),
    ):
        r = c.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 2})
    assert r.status_code == 200
    entry = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert entry["prompt"] == PROMPT and entry["completion"] == r.json()["choices"][0]["text"]
    server = next(s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER)
    assert (server.attributes or {})["gen_ai.prompt"] == PROMPT


def test_telemetry_off_serves_without_metrics_observation_or_spans() -> None:
    thread, _, _, spans = serve(settings=Settings(telemetry=False))
    with thread as base_url, httpx.Client(base_url=base_url, timeout=30) as c:
        r = c.post("/v1/completions", json={"prompt": "quiet", "max_tokens": 2, "stream": True})
        text = c.get("/metrics").text
    assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")
    assert spans.get_finished_spans() == ()
    assert "inferwatch_requests_total" not in text
    assert "inferwatch_queue_depth" in text  # live engine state is still there


class _OtlpSink(BaseHTTPRequestHandler):
    """Stands in for an OTLP/HTTP collector (Jaeger cannot run here): keeps what it receives."""

    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def test_spans_are_exported_over_otlp_http_when_an_endpoint_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _OtlpSink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{sink.server_port}")
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
        app = create_app(Settings(), backend=small_engine(), metric_sources=[])
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),  # its shutdown flushes the batch processor
            httpx.AsyncClient(transport=transport, base_url="http://asgi") as c,
        ):
            r = await c.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 2})
            assert r.status_code == 200
    finally:
        sink.shutdown()
        sink.server_close()
    paths = {path for path, _ in _OtlpSink.received}
    assert paths == {"/v1/traces"}
    exported = ExportTraceServiceRequest()
    names: set[str] = set()
    for _, body in _OtlpSink.received:
        exported.ParseFromString(body)
        names |= {
            s.name for rs in exported.resource_spans for ss in rs.scope_spans for s in ss.spans
        }
    assert {"queue", "prefill", "decode", "POST /v1/completions"} <= names
    assert all(PROMPT.encode() not in body for _, body in _OtlpSink.received)


def test_streamed_server_span_skips_middle_chunks_yet_ends_with_status(
    fresh_service: RunningService,
) -> None:
    """The instrumentation's send wrapper sees only the first and last message of a stream
    (inference/telemetry/server_span.py); the server span must still get the status code and
    end after the last chunk."""
    service = fresh_service
    with service.client() as c:
        body = {"model": MODEL, "prompt": "count", "max_tokens": 8, "stream": True}
        with c.stream("POST", "/v1/completions", json=body) as r:
            assert r.status_code == 200
            events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and len(events) >= 4
    layers = middleware_layers(service.app.middleware_stack)
    otel = [m for m in layers if isinstance(m, OpenTelemetryMiddleware)]
    assert len(otel) == 1 and is_installed(otel[0])
    (server,) = service.server_spans(1)
    spans = service.spans.get_finished_spans()
    decode = next(s for s in spans if s.name == "decode")
    assert (server.attributes or {})["http.response.status_code"] == 200
    assert (server.attributes or {})["url.path"] == "/v1/completions"  # stable HTTP semconv
    assert decode.end_time <= server.end_time
    assert server.status.is_ok
