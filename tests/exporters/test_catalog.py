"""The standalone exporter's families are exactly its catalog (exporters/catalog.py), XID events
included. NVML is the FAKE two-GPU module (tests/support/fake_nvml.py), a test double because
no GPU exists here; it drives the real GPU, host and collector-group code."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest

from exporters.catalog import EXPORTER_FAMILIES, GPU_INFO, GPU_UP, MetricDef
from exporters.collector import CollectorGroup
from exporters.gpu import GpuSource
from exporters.host import HostSource
from tests.support.catalog_check import Exported, disagreements, families_of
from tests.support.fake_nvml import two_gpus
from tests.support.waiting import wait_until


def _openmetrics(group: CollectorGroup) -> str:
    registry = CollectorRegistry()
    registry.register(group)
    return generate_latest(registry).decode()


@pytest.fixture(scope="module")
def families() -> Iterator[dict[str, Exported]]:
    """Two fake GPUs, one XID on GPU 0, and the host: every exporter family at least once."""
    fake = two_gpus()
    gpu = GpuSource(nvml=fake, cache_seconds=0.0)
    group = CollectorGroup([gpu, HostSource()])
    try:
        _openmetrics(group)  # the first collection starts the XID watcher
        assert wait_until(lambda: bool(fake.event_sets) and len(fake.event_sets[0].handles) == 2)
        fake.emit_xid(0, 79)
        seen: dict[str, Exported] = {}

        def complete() -> bool:
            # One scrape with every family: the XID must have been counted, and the host CPU
            # ratio needs some CPU time to pass since the source was made.
            seen.clear()
            seen.update(families_of(_openmetrics(group)))
            return all(d.name in seen for d in EXPORTER_FAMILIES)

        assert wait_until(complete), sorted(d.name for d in EXPORTER_FAMILIES if d.name not in seen)
        yield seen
    finally:
        gpu.close()


def test_the_exporter_exports_exactly_its_catalog(families: dict[str, Exported]) -> None:
    assert set(families) == {d.name for d in EXPORTER_FAMILIES}
    assert disagreements(families, EXPORTER_FAMILIES) == {}


def test_a_family_unlike_its_definition_would_fail(families: dict[str, Exported]) -> None:
    """The check above can fail: a definition with another label set or help is caught, and
    a family left out of the catalog reads as undocumented."""
    changed = [
        replace(GPU_INFO, labels=(*GPU_INFO.labels[:-1],), values={}),
        replace(GPU_UP, help="Something else."),
        *(d for d in EXPORTER_FAMILIES if d.name not in {GPU_INFO.name, GPU_UP.name}),
    ]
    found = disagreements(families, changed)
    assert set(found) == {GPU_INFO.name, GPU_UP.name}
    assert "labels" in found[GPU_INFO.name][0] and "help" in found[GPU_UP.name][0]
    without_up = [d for d in EXPORTER_FAMILIES if d.name != GPU_UP.name]
    assert disagreements(families, without_up) == {GPU_UP.name: ["not in the catalog"]}


def test_a_label_value_outside_the_vocabulary_would_fail(families: dict[str, Exported]) -> None:
    narrow = replace(GPU_INFO, values={"mig_mode": ("enabled",)})
    others = [d for d in EXPORTER_FAMILIES if d.name != GPU_INFO.name]
    (problem,) = disagreements(families, [narrow, *others])[GPU_INFO.name]
    assert problem.startswith("mig_mode values ['disabled', 'unsupported']")


def test_a_definition_builds_its_family() -> None:
    labelled = GPU_INFO.family()
    assert (labelled.name, labelled.documentation, labelled.type) == (
        GPU_INFO.name,
        GPU_INFO.help,
        "gauge",
    )
    single = GPU_UP.family(0)
    assert [(s.name, s.labels, s.value) for s in single.samples] == [(GPU_UP.name, {}, 0)]
    counter = MetricDef("inferwatch_things_total", "counter", "Things.", labels=("kind",))
    assert counter.family().type == "counter"
    with pytest.raises(TypeError, match="histogram"):
        MetricDef("inferwatch_wait_seconds", "histogram", "Waits.", buckets=(1.0,)).family()
