"""BatchHistogram exposes exactly what prometheus-client's Histogram would for the same values."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from inference.telemetry.batch_histogram import BatchHistogram
from inference.telemetry.metrics import LATENCY_BUCKETS

NAME = "inferwatch_inter_token_latency_seconds"


def _without_created(text: str) -> list[str]:
    return [line for line in text.splitlines() if "_created" not in line]


def test_same_exposition_as_histogram_including_bucket_edges() -> None:
    rng = random.Random(7)
    requests = [[rng.expovariate(40) for _ in range(rng.randint(0, 70))] for _ in range(30)]
    requests.append([0.001, 0.0025, 60.0, 61.0, 0.0])  # exactly on bounds, above the last
    reference_registry, batch_registry = CollectorRegistry(), CollectorRegistry()
    reference = Histogram(
        NAME, "Gap between consecutive tokens.", ["model", "priority"],
        buckets=LATENCY_BUCKETS, registry=reference_registry,
    )  # fmt: skip
    batch = BatchHistogram(
        NAME, "Gap between consecutive tokens.", ["model", "priority"],
        buckets=LATENCY_BUCKETS, registry=batch_registry,
    )  # fmt: skip
    reference.labels("m", "batch")  # pre-initialised, never observed
    batch.labels("m", "batch")
    for i, gaps in enumerate(requests):
        priority = ("premium", "standard")[i % 2]
        for gap in gaps:
            reference.labels("m", priority).observe(gap)
        batch.observe_many(("m", priority), gaps)
    expected = _without_created(generate_latest(reference_registry).decode())
    assert _without_created(generate_latest(batch_registry).decode()) == expected


def test_largest_observation_carries_the_exemplar() -> None:
    registry = CollectorRegistry()
    batch = BatchHistogram(NAME, "doc", ["model"], buckets=LATENCY_BUCKETS, registry=registry)
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    batch.observe_many(("m",), [0.003, 0.35, 0.004], {"trace_id": trace_id})
    lines = openmetrics_latest(registry).decode().splitlines()
    with_exemplar = [line for line in lines if "# {" in line]
    assert len(with_exemplar) == 1
    assert with_exemplar[0].startswith(
        f'{NAME}_bucket{{le="0.4",model="m"}} 3.0 # {{trace_id="{trace_id}"}} 0.35'
    )


def test_wrong_label_count_is_an_error() -> None:
    batch = BatchHistogram(NAME, "doc", ["model"], buckets=(1.0,), registry=CollectorRegistry())
    with pytest.raises(ValueError, match="takes labels"):
        batch.observe_many(("m", "extra"), [0.1])
