"""What the code really exports, for the dashboard linter: the exposition of the real app with
the real engine, the real host collector and the real GPU collector over the FAKE two-GPU NVML
of tests/support/fake_nvml.py (a test double: no GPU exists here), after one request of each
priority and one XID event, as tests/test_metric_contract.py builds it; and what the generated
rules record."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest

from alerts.rules import render_rules
from alerts.spec import SPEC
from dashboards.promql import parse
from exporters.collector import CollectorGroup
from exporters.gpu import GpuSource
from exporters.host import HostSource
from inference.api.app import create_app
from inference.backend import Priority
from inference.settings import Settings
from tests.support import exposition
from tests.support.catalog_check import families_of
from tests.support.fake_nvml import FakeNvml, two_gpus
from tests.support.metric_refs import BUILTINS, HISTOGRAM_SUFFIXES, family
from tests.support.service import small_engine
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((ROOT / "alerts" / "generated").glob("*.rules.yml"))
OPENMETRICS = {"Accept": "application/openmetrics-text; version=1.0.0"}
SCRAPE_LABELS = frozenset({"job", "instance"})  # Prometheus adds them to every scraped series
# Prometheus' own series, with the labels the dashboards may filter them by.
BUILTIN_LABELS: Mapping[str, frozenset[str]] = {
    "up": SCRAPE_LABELS,
    "ALERTS": frozenset({"alertname", "alertstate", "severity", "job", "instance", "model"}),
}


@dataclass(frozen=True)
class Series:
    """A series a query may read: its type and every label it carries."""

    type: str  # counter | gauge | histogram | recorded | builtin
    labels: frozenset[str]
    exemplars: bool = False
    sources: frozenset[str] = frozenset()  # the raw families a recorded series is made from


def _openmetrics(gpu: GpuSource) -> str:
    """One scrape of the real app after a request of each priority."""
    app = create_app(Settings(), backend=small_engine(), metric_sources=[gpu, HostSource()])
    with TestClient(app) as client:
        for priority in Priority:
            body = {"prompt": "dashboards", "max_tokens": 4, "priority": priority.value}
            assert client.post("/v1/completions", json=body).status_code == 200
        return client.get("/metrics", headers=OPENMETRICS).text


def _with_xid(fake: FakeNvml, gpu: GpuSource) -> str:
    """The GPU source's own exposition once an XID was counted (the family waits for one)."""
    registry = CollectorRegistry()
    registry.register(CollectorGroup([gpu]))
    generate_latest(registry)  # the first collection starts the XID watcher
    assert wait_until(lambda: bool(fake.event_sets) and len(fake.event_sets[0].handles) == 2)
    fake.emit_xid(0, 79)
    text = ""

    def counted() -> bool:
        nonlocal text
        text = generate_latest(registry).decode()
        return "inferwatch_gpu_xid_errors_total" in text

    assert wait_until(counted), "the XID was never counted"
    return text


def exported_series() -> dict[str, Series]:
    """Family name (counters with `_total`) -> what the real code exports."""
    fake = two_gpus()
    gpu = GpuSource(nvml=fake, cache_seconds=0.0)
    try:
        texts = [_with_xid(fake, gpu), _openmetrics(gpu)]
    finally:
        gpu.close()
    out: dict[str, Series] = {}
    for text in texts:
        with_exemplars = {
            family(s.name) if f.type == "histogram" else f.name
            for f in exposition.families(text, openmetrics=True)
            for s in f.samples
            if s.exemplar is not None
        }
        for name, found in families_of(text).items():
            out[name] = Series(found.type, found.labels | SCRAPE_LABELS, name in with_exemplars)
    return out


def _recorded_labels(expr: str, known: Mapping[str, Series]) -> frozenset[str]:
    """The labels a recording rule keeps: its first aggregation's `by`, or (a rule that only
    reshapes another recorded series, like a baseline) those of the series it reads."""
    parsed = parse(expr)
    if parsed.aggregations and parsed.aggregations[0].grouping == "by":
        return frozenset(parsed.aggregations[0].labels) - {"le"}
    for selector in parsed.selectors:
        if selector.name in known:
            return known[selector.name].labels
    raise AssertionError(f"cannot tell which labels {expr!r} keeps")


def recorded_series() -> dict[str, Series]:
    """`record:` name -> its labels and the raw families behind it, from the generated rules."""
    out: dict[str, Series] = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" not in rule:
                    continue
                names = {s.name for s in parse(rule["expr"]).selectors}
                sources = {family(n) for n in names if n not in out}
                for n in names & set(out):
                    sources |= out[n].sources
                labels = _recorded_labels(rule["expr"], out)
                out[rule["record"]] = Series("recorded", labels, sources=frozenset(sources))
    return out


def alert_exprs() -> dict[str, list[str]]:
    """Alert name -> its expressions, from the rules the spec renders (baselines, SLO burn
    rates, guards alike)."""
    out: dict[str, list[str]] = {}
    for text in render_rules(SPEC, SPEC.prometheus, "runbooks.md").values():
        for group in yaml.safe_load(text)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    out.setdefault(rule["alert"], []).append(rule["expr"])
    return out


_RUNBOOK_LINK = re.compile(r"^\*\*Dashboard\.\*\* \[[^\]]*\]\((?P<url>[^)\s]+)\)", re.M)


def alert_dashboard_urls() -> dict[str, frozenset[str]]:
    """Alert name -> every dashboard link it carries in the committed files: its rules'
    `dashboard_url` annotations (Go templates) and its runbook section's link."""
    out: dict[str, set[str]] = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    url = rule.get("annotations", {}).get("dashboard_url", "")
                    out.setdefault(rule["alert"], set()).add(url)
    runbook = (ROOT / "alerts" / "generated" / "runbooks.md").read_text()
    for section in runbook.split("\n## ")[1:]:
        name, _, body = section.partition("\n")
        links = [m.group("url") for m in _RUNBOOK_LINK.finditer(body)]
        out.setdefault(name.strip(), set()).update(links or [""])
    return {alert: frozenset(urls) for alert, urls in out.items()}


def all_series() -> dict[str, Series]:
    exported = exported_series()
    builtins = {
        name: Series("builtin", BUILTIN_LABELS.get(name, SCRAPE_LABELS)) for name in BUILTINS
    }
    return {**builtins, **exported, **recorded_series()}


def sample_names(series: Mapping[str, Series]) -> set[str]:
    """Every name a selector may use: families, and a histogram's _bucket/_count/_sum."""
    names = set(series)
    for name, s in series.items():
        if s.type == "histogram":
            names |= {name + suffix for suffix in HISTOGRAM_SUFFIXES}
    return names
