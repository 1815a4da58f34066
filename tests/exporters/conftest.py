"""Fixtures: a two-GPU fake NVML and an in-process exporter server (helpers: tests/support)."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry

from exporters.collector import CollectorGroup
from exporters.server import make_server
from tests.support.fake_nvml import FakeNvml, two_gpus


@pytest.fixture
def fake() -> FakeNvml:
    return two_gpus()


@dataclass
class Served:
    url: str
    registry: CollectorRegistry

    def get(self, path: str = "/metrics", accept: str = "") -> tuple[int, str, str]:
        """(status, content type, body) over real HTTP."""
        request = urllib.request.Request(self.url + path, headers={"Accept": accept})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers["Content-Type"], response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()


@pytest.fixture
def serve() -> Iterator[Callable[[CollectorGroup], Served]]:
    """serve(group) -> Served: the exporter's HTTP server on 127.0.0.1, ephemeral port."""
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(group: CollectorGroup) -> Served:
        registry = CollectorRegistry()
        registry.register(group)
        server = make_server(registry, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return Served(f"http://127.0.0.1:{server.server_address[1]}", registry)

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(5)
