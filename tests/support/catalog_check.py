"""An exposition and a page checked against the metric catalog (exporters/catalog.py,
inference/telemetry/catalog.py). Each check returns what is wrong rather than asserting, so a
test can also show it failing on a catalog or an exposition made wrong on purpose."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from exporters.catalog import MetricDef
from tests.support.exposition import families

BASE_UNITS = ("seconds", "bytes", "ratio", "celsius", "watts", "hertz", "joules")
# Never a label: unbounded, or private (trace ids travel as exemplars).
FORBIDDEN_LABELS = frozenset({"user", "user_id", "api_key", "prompt", "request_id", "trace_id"})


@dataclass(frozen=True)
class Exported:
    """One `inferwatch_*` family as a scrape shows it."""

    type: str
    help: str
    labels: frozenset[str]
    values: Mapping[str, frozenset[str]]  # label -> values seen


def families_of(openmetrics: str) -> dict[str, Exported]:
    """`inferwatch_*` families of an OpenMetrics exposition, by catalog name (counters with
    `_total`). OpenMetrics, not classic text: there `_created` and `_total` stay inside their
    family instead of passing for families of their own."""
    out: dict[str, Exported] = {}
    for family in families(openmetrics, openmetrics=True):
        if not family.name.startswith("inferwatch_"):
            continue
        values: dict[str, set[str]] = {}
        for sample in family.samples:
            for label, value in sample.labels.items():
                if not (label == "le" and family.type == "histogram"):
                    values.setdefault(label, set()).add(value)
        name = f"{family.name}_total" if family.type == "counter" else family.name
        out[name] = Exported(
            family.type,
            family.documentation,
            frozenset(values),
            {label: frozenset(seen) for label, seen in values.items()},
        )
    return out


def not_exported(catalog: Iterable[MetricDef], families: Mapping[str, Exported]) -> set[str]:
    """Catalog families the exposition lacks; event-only ones may wait for their first event."""
    return {d.name for d in catalog if not d.event_only and d.name not in families}


def disagreements(
    families: Mapping[str, Exported], catalog: Iterable[MetricDef]
) -> dict[str, list[str]]:
    """Exported families that the catalog lacks, or defines with another type, help or label
    set, or whose label values leave the catalog's fixed vocabulary."""
    by_name = {d.name: d for d in catalog}
    out: dict[str, list[str]] = {}
    for name, family in families.items():
        d = by_name.get(name)
        if d is None:
            out[name] = ["not in the catalog"]
            continue
        problems = []
        if family.type != d.exposed_type:
            problems.append(f"type {family.type}, catalog {d.exposed_type}")
        if family.help != d.help:
            problems.append(f"help {family.help!r}, catalog {d.help!r}")
        if family.labels != set(d.labels):
            problems.append(f"labels {sorted(family.labels)}, catalog {sorted(d.labels)}")
        for label, vocabulary in d.values.items():
            extra = family.values.get(label, frozenset()) - set(vocabulary)
            if extra:
                problems.append(f"{label} values {sorted(extra)} outside {list(vocabulary)}")
        if problems:
            out[name] = problems
    return out


def naming_problems(d: MetricDef) -> list[str]:
    """Where a definition breaks the naming rules that docs/metrics.md states."""
    problems = []
    if not d.name.startswith("inferwatch_") or ":" in d.name:
        problems.append("names start with inferwatch_ and have no colon")
    if (d.type == "counter") != d.name.endswith("_total"):
        problems.append("counters, and only counters, end in _total")
    if (d.type == "info") != d.name.endswith("_info"):
        problems.append("info gauges, and only they, end in _info")
    stem = d.name.removesuffix("_total")
    named = [unit for unit in BASE_UNITS if stem.endswith(f"_{unit}")]
    if (d.unit in BASE_UNITS or named) and named != [d.unit]:
        problems.append(f"unit {d.unit!r} is not the base unit the name ends in")
    if (d.type == "histogram") != bool(d.buckets) or list(d.buckets) != sorted(set(d.buckets)):
        problems.append("histograms, and only they, have increasing buckets")
    if d.exemplar and d.type != "histogram":
        problems.append("only histograms carry exemplars")
    if len(set(d.labels)) != len(d.labels) or not set(d.values) <= set(d.labels):
        problems.append("labels are distinct and every vocabulary belongs to one")
    if FORBIDDEN_LABELS & set(d.labels) or "le" in d.labels:
        problems.append(f"label from {sorted(FORBIDDEN_LABELS | {'le'})}")
    return problems


def not_listed(catalog: Iterable[MetricDef], page: str) -> set[str]:
    """Catalog names that the reference page has no table row for."""
    return {d.name for d in catalog if f"| `{d.name}` |" not in page}
