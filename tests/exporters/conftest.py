"""Shared helpers: a two-GPU fake NVML, an in-process exporter server, exposition parsing."""

from __future__ import annotations

import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporters.collector import CollectorGroup
from exporters.server import make_server
from tests.exporters.fake_nvml import FakeGpu, FakeNvml

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def two_gpus() -> FakeNvml:
    """GPU 0 supports everything; GPU 1 (an older board) has no power, energy or ECC."""
    return FakeNvml(
        [
            FakeGpu(uuid="GPU-0a1b2c3d-0000-0000-0000-000000000000"),
            FakeGpu(
                uuid="GPU-0a1b2c3d-1111-1111-1111-111111111111",
                name="NVIDIA A10",
                pci_bus_id=b"00000000:65:00.0",
                util_percent=7,
                memory_total=24 * 2**30,
                memory_used=1 * 2**30,
                temperature=61,
                sm_mhz=1695,
                clock_reasons=0x1 | 0x20,  # gpu_idle + sw_thermal_slowdown
                unsupported={
                    "nvmlDeviceGetPowerUsage",
                    "nvmlDeviceGetEnforcedPowerLimit",
                    "nvmlDeviceGetTotalEnergyConsumption",
                    "nvmlDeviceGetTotalEccErrors",
                    "nvmlDeviceGetMigMode",
                },
            ),
        ]
    )


@pytest.fixture
def fake() -> FakeNvml:
    return two_gpus()


def samples(text: str) -> Samples:
    """(sample name, labels) -> value for a classic text exposition."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, metric: str, /, **labels: str) -> float | None:
    return samples(text).get((metric, frozenset(labels.items())))


def names(text: str) -> set[str]:
    return {name for name, _ in samples(text)}


def exposition(group: CollectorGroup) -> str:
    registry = CollectorRegistry()
    registry.register(group)
    return generate_latest(registry).decode()


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


def promtool_findings(text: str) -> str:
    """`promtool check metrics` lint output for an exposition ("" when clean)."""
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    findings = (result.stdout + result.stderr).decode().strip()
    assert result.returncode == 0 or findings, "promtool failed without saying why"
    return findings
