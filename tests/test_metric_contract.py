"""Rules may only query metrics that code really exports (vLLM's dashboards broke silently on
renames; ours must not). The exposition comes from the real service app with the real engine
and host collector; NVML is the FAKE two-GPU module of tests/exporters (a test double: no GPU
exists here), which drives the real GPU collector code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from exporters.gpu import GpuSource
from exporters.host import HostSource
from inference.api.app import create_app
from inference.engine import EngineConfig, build_engine
from inference.settings import Settings
from tests.exporters.conftest import two_gpus
from tests.support.metric_refs import HISTOGRAM_SUFFIXES, metrics_md_names, referenced_metrics

ROOT = Path(__file__).resolve().parent.parent
RULE_FILES = sorted((ROOT / "alerts" / "generated").glob("*.rules.yml"))
METRICS_MD = ROOT.parent / "shared" / "design" / "METRICS.md"
# Counted only after an XID event arrives; tests/exporters/test_xid.py covers the family.
EVENT_ONLY = {"inferwatch_gpu_xid_errors_total"}


def exported_families(exposition: str) -> set[str]:
    """Every sample name, plus the family name of histogram series."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            names.add(sample.name)
            for suffix in HISTOGRAM_SUFFIXES:
                if sample.name.endswith(suffix):
                    names.add(sample.name.removesuffix(suffix))
    return names


def missing(referenced: set[str], exported: set[str]) -> set[str]:
    return {name for name in referenced if name not in exported}


@pytest.fixture(scope="module")
def exported() -> Iterator[set[str]]:
    backend = build_engine(EngineConfig(num_kv_blocks=64, max_num_seqs=4, max_waiting=16, seed=0))
    gpu = GpuSource(nvml=two_gpus(), cache_seconds=0.0, watch_xid=False)
    app = create_app(Settings(), backend=backend, metric_sources=[gpu, HostSource()])
    with TestClient(app) as client:
        body = {"model": backend.model_name, "prompt": "contract", "max_tokens": 4}
        assert client.post("/v1/completions", json=body).status_code == 200
        yield exported_families(client.get("/metrics").text)
    gpu.close()


def test_every_rule_queries_an_exported_metric(exported: set[str]) -> None:
    assert RULE_FILES, "no generated rule files"
    referenced = referenced_metrics(RULE_FILES)
    assert referenced, "the scanner found no metric at all"
    assert missing(referenced, exported) == set()


def test_a_renamed_metric_would_fail(exported: set[str], tmp_path: Path) -> None:
    """The check above can fail: a rule on a name nobody exports is caught."""
    rules = tmp_path / "renamed.rules.yml"
    rules.write_text(
        "groups:\n- name: renamed\n  rules:\n"
        "  - record: model:inferwatch_ttft:p95\n"
        "    expr: histogram_quantile(0.95, sum by (le) "
        "(rate(inferwatch_ttft_seconds_bucket[5m])))\n"
    )
    assert missing(referenced_metrics([rules]), exported) == {"inferwatch_ttft_seconds"}


def test_metrics_md_contract_is_exported(exported: set[str]) -> None:
    """Every name the contract declares for the service, engine, GPU and host is exported."""
    declared = metrics_md_names(METRICS_MD.read_text())
    assert len(declared) > 30
    assert missing(declared - EVENT_ONLY, exported) == set()
