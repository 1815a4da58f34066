"""The one exposition parser of the tests, with two queries whose names say what they do:
`value` wants the exact label set and gives None when that series is absent; `total` sums every
series whose labels include the given ones and fails when none does (a misspelt name or label
would otherwise read as a plausible 0)."""

from __future__ import annotations

import subprocess

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from exporters.collector import CollectorGroup

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def families(text: str, *, openmetrics: bool = False) -> list[Metric]:
    """The parsed families of a classic text (or OpenMetrics) exposition."""
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    return list(parse(text))


def exemplar_trace_ids(openmetrics: str) -> set[str]:
    """Trace ids of every exemplar (they appear only in OpenMetrics)."""
    return {
        s.exemplar.labels["trace_id"]
        for family in families(openmetrics, openmetrics=True)
        for s in family.samples
        if s.exemplar is not None
    }


def samples(text: str, *, openmetrics: bool = False) -> Samples:
    """(sample name, labels) -> value, for a classic text (or OpenMetrics) exposition."""
    out: Samples = {}
    for family in families(text, openmetrics=openmetrics):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, name: str, /, **labels: str) -> float | None:
    """The sample with exactly these labels, or None."""
    return samples(text).get((name, frozenset(labels.items())))


def total(text: str, name: str, /, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`; LookupError if none."""
    wanted = set(labels.items())
    found = [v for (n, ls), v in samples(text).items() if n == name and wanted <= ls]
    if not found:
        raise LookupError(f"no sample {name}{labels or ''} in the exposition")
    return sum(found)


def names(text: str) -> set[str]:
    return {name for name, _ in samples(text)}


def exposition(group: CollectorGroup) -> str:
    """A collector group's classic text exposition, through a fresh registry."""
    registry = CollectorRegistry()
    registry.register(group)
    return generate_latest(registry).decode()


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
