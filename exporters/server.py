"""A small threaded HTTP server for `/metrics` and `/health`.

The standalone exporter needs no framework: stdlib `ThreadingHTTPServer` plus prometheus-client's
`choose_encoder`, so Prometheus gets OpenMetrics when it asks for it and curl gets classic text.
"""

from __future__ import annotations

import logging
import socket
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    registry: CollectorRegistry  # set on the subclass made by make_server

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._metrics()
        elif path == "/health":
            self._reply(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
        else:
            self._reply(
                HTTPStatus.NOT_FOUND,
                b"not found: try /metrics or /health\n",
                "text/plain; charset=utf-8",
            )

    def _metrics(self) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(self.registry)
        except Exception:  # noqa: BLE001 - sources are isolated; this is a last resort
            log.exception("exposition failed")
            self._reply(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                b"exposition failed\n",
                "text/plain; charset=utf-8",
            )
            return
        self._reply(HTTPStatus.OK, body, content_type)

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        log.debug("%s %s", self.address_string(), format % args)


class _ThreadingHTTPServerV6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def make_server(registry: CollectorRegistry, host: str, port: int) -> ThreadingHTTPServer:
    """Bound (port 0 picks a free one: read `server.server_address`), not yet serving."""
    handler = type("MetricsHandler", (_Handler,), {"registry": registry})
    server_class = _ThreadingHTTPServerV6 if ":" in host else ThreadingHTTPServer
    server = server_class((host, port), handler)
    server.daemon_threads = True
    return server
