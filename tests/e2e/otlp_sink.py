"""Stands in for Jaeger's OTLP/HTTP receiver (Jaeger cannot run here): the service's own span
exporter (OTLP/HTTP protobuf, `OTEL_EXPORTER_OTLP_ENDPOINT`) posts to it, and it keeps the
trace ids it was sent, so a test can check that an exemplar links to a trace that left the
service."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class OtlpSink:
    def __init__(self) -> None:
        self.trace_ids: set[str] = set()
        self.spans = 0
        lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                spans = [
                    s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans
                ]
                with lock:
                    sink.trace_ids.update(s.trace_id.hex() for s in spans)
                    sink.spans += len(spans)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
