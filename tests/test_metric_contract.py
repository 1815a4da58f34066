"""The code exports exactly its metric catalog (inference/telemetry/catalog.py with
exporters/catalog.py), docs/metrics.md lists it, and rules may only query metrics that code
really exports (vLLM's dashboards broke silently on renames; ours must not). The exposition
comes from the real service app with the real engine and host collector; NVML is the FAKE
two-GPU module of tests/support/fake_nvml.py (a test double: no GPU exists here), which drives
the real GPU collector code."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.openmetrics.exposition import generate_latest

from exporters.gpu import GpuSource
from exporters.host import HostSource
from inference.api.app import create_app
from inference.engine import EngineConfig, build_engine
from inference.settings import Settings
from inference.telemetry.catalog import CATALOG, REQUESTS, UPSTREAM_FAMILIES, metric_names
from inference.telemetry.metrics_doc import PATH, render
from tests.support import exposition
from tests.support.catalog_check import (
    Exported,
    disagreements,
    families_of,
    naming_problems,
    not_exported,
    not_listed,
)
from tests.support.fake_nvml import two_gpus
from tests.support.metric_refs import HISTOGRAM_SUFFIXES, referenced_metrics

ROOT = Path(__file__).resolve().parent.parent
RULE_FILES = sorted((ROOT / "alerts" / "generated").glob("*.rules.yml"))
OPENMETRICS = {"Accept": "application/openmetrics-text; version=1.0.0"}


def exported_families(text: str) -> set[str]:
    """Every sample name, plus the family name of histogram series."""
    names: set[str] = set()
    for family in exposition.families(text):
        for sample in family.samples:
            names.add(sample.name)
            for suffix in HISTOGRAM_SUFFIXES:
                if sample.name.endswith(suffix):
                    names.add(sample.name.removesuffix(suffix))
    return names


def missing(referenced: set[str], exported: set[str]) -> set[str]:
    return {name for name in referenced if name not in exported}


@pytest.fixture(scope="module")
def scrapes() -> Iterator[tuple[str, str]]:
    """(classic text, OpenMetrics) /metrics of the real app after one request."""
    backend = build_engine(
        EngineConfig(model="tiny", num_kv_blocks=64, max_num_seqs=4, max_waiting=16, seed=0)
    )
    gpu = GpuSource(nvml=two_gpus(), cache_seconds=0.0, watch_xid=False)
    app = create_app(Settings(), backend=backend, metric_sources=[gpu, HostSource()])
    with TestClient(app) as client:
        body = {"model": backend.model_name, "prompt": "contract", "max_tokens": 4}
        assert client.post("/v1/completions", json=body).status_code == 200
        yield client.get("/metrics").text, client.get("/metrics", headers=OPENMETRICS).text
    gpu.close()


@pytest.fixture(scope="module")
def exported(scrapes: tuple[str, str]) -> set[str]:
    return exported_families(scrapes[0])


@pytest.fixture(scope="module")
def families(scrapes: tuple[str, str]) -> dict[str, Exported]:
    return families_of(scrapes[1])


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


def test_every_catalog_family_is_exported(families: dict[str, Exported]) -> None:
    """Service, engine, KV cache, GPU, host and collector families alike; the XID counter is
    the one family that waits for its first event (tests/exporters/test_catalog.py sees it),
    and the upstream families are a proxy backend's (tests/upstream/test_metrics.py sees them
    in front of a real vLLM)."""
    assert len(CATALOG) > 30
    assert {d.name for d in CATALOG if d.event_only} == {"inferwatch_gpu_xid_errors_total"}
    assert not_exported(CATALOG, families) == {d.name for d in UPSTREAM_FAMILIES}


def test_a_catalog_family_nobody_exports_would_fail(families: dict[str, Exported]) -> None:
    ghost = replace(REQUESTS, name="inferwatch_ghost_requests_total")
    upstream = {d.name for d in UPSTREAM_FAMILIES}
    assert not_exported((*CATALOG, ghost), families) == {ghost.name, *upstream}


def test_every_exported_family_is_in_the_catalog_alike(families: dict[str, Exported]) -> None:
    """Nothing under inferwatch_ is exported undocumented, or with another type, help, label
    set or label value than its definition says."""
    assert disagreements(families, CATALOG) == {}


def test_an_undocumented_or_changed_family_would_fail() -> None:
    registry = CollectorRegistry()
    Gauge("inferwatch_undocumented", "Not in the catalog.", registry=registry).set(1)
    batch = Gauge(
        "inferwatch_batch_size", "Sequences per scheduler step.", ["model"], registry=registry
    )
    batch.labels("m").set(1)
    requests = Counter(
        "inferwatch_requests_total", "Finished requests by outcome.",
        ["model", "priority", "outcome", "user"], registry=registry,
    )  # fmt: skip
    requests.labels("m", "standard", "exploded", "alice").inc()
    found = disagreements(families_of(generate_latest(registry).decode()), CATALOG)
    assert found["inferwatch_undocumented"] == ["not in the catalog"]
    assert found["inferwatch_batch_size"] == ["type gauge, catalog histogram"]
    labels, outcome = found["inferwatch_requests_total"]
    assert "'user'" in labels and outcome.startswith("outcome values ['exploded']")


def test_the_catalog_follows_the_naming_rules() -> None:
    assert len(metric_names()) == len(CATALOG), "a name is defined twice"
    assert {d.name: naming_problems(d) for d in CATALOG if naming_problems(d)} == {}


def test_a_badly_named_family_would_fail() -> None:
    bad = replace(REQUESTS, name="inferwatch:requests", unit="seconds", labels=("request_id",))
    problems = naming_problems(bad)
    assert [p.split()[0] for p in problems] == ["names", "counters,", "unit", "labels", "label"]


def test_the_docs_page_lists_every_catalog_family() -> None:
    """docs/metrics.md is generated (`inferwatch generate --check` fails on drift); here the
    rendered page, and the committed one, have a row for every name."""
    page = render()[PATH]
    assert not_listed(CATALOG, page) == set()
    assert (ROOT / PATH).read_text() == page, "docs/metrics.md is stale: run inferwatch generate"


def test_a_family_missing_from_the_page_would_fail() -> None:
    page = render()[PATH]
    extra = replace(REQUESTS, name="inferwatch_unlisted_total")
    assert not_listed((*CATALOG, extra), page) == {extra.name}
    without_row = "\n".join(line for line in page.splitlines() if REQUESTS.name not in line)
    assert not_listed(CATALOG, without_row) == {REQUESTS.name}
