"""The service's /metrics next to a failing GPU collector: NVML here is the FAKE NVML
(tests/exporters/fake_nvml.py, no GPU exists), the service and its engine are the real ones."""

from __future__ import annotations

from collections.abc import Iterator

import pynvml
import pytest
from fastapi.testclient import TestClient

from exporters.gpu import GpuSource
from exporters.host import HostSource
from inference.api.app import create_app
from inference.engine import EngineConfig, build_engine
from inference.settings import Settings
from tests.support.exposition import names, promtool_findings, value
from tests.support.fake_nvml import FakeNvml, two_gpus


@pytest.fixture(scope="module")
def fake() -> FakeNvml:
    return two_gpus()


@pytest.fixture(scope="module")
def client(fake: FakeNvml) -> Iterator[TestClient]:
    backend = build_engine(
        EngineConfig(model="tiny", num_kv_blocks=64, max_num_seqs=4, max_waiting=16, seed=0)
    )
    gpu = GpuSource(nvml=fake, cache_seconds=0.0, watch_xid=False)
    app = create_app(Settings(), backend=backend, metric_sources=[gpu, HostSource()])
    with TestClient(app) as test_client:
        yield test_client


def test_failing_nvml_leaves_queue_metrics_intact(client: TestClient, fake: FakeNvml) -> None:
    # The error counter is process-wide (other tests' collectors fail too): count this failure.
    before = client.get("/metrics").text
    errors = {c: _errors(before, c) for c in ("gpu", "queue")}
    fake.fail["nvmlDeviceGetCount"] = pynvml.NVML_ERROR_UNKNOWN
    try:
        response = client.get("/metrics")
    finally:
        del fake.fail["nvmlDeviceGetCount"]
    assert response.status_code == 200
    body = response.text
    assert value(body, "inferwatch_gpu_up") == 0
    assert _errors(body, "gpu") == errors["gpu"] + 1
    assert _errors(body, "queue") == errors["queue"]
    assert "inferwatch_queue_depth" in names(body)
    assert "inferwatch_host_memory_total_bytes" in names(body)

    recovered = client.get("/metrics").text
    assert value(recovered, "inferwatch_gpu_up") == 1
    assert "inferwatch_gpu_memory_used_bytes" in names(recovered)


def _errors(body: str, collector: str) -> float:
    return value(body, "inferwatch_exporter_collect_errors_total", collector=collector) or 0.0


def test_service_exposition_passes_promtool(client: TestClient) -> None:
    body = client.get("/metrics").text
    assert "inferwatch_gpu_up" in names(body)
    assert promtool_findings(body) == ""
