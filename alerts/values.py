"""The deployment's values: where notifications go, where the runbook and the dashboards are
served, and thresholds.

Who gets what (the routing tree) and how the rules work (baselines, windows, minimum events) is
policy and lives in code; these are facts about one deployment, read from a values file
(alerts/values.yml unless told otherwise). Receivers and thresholds are read separately: a
file that only configures Alertmanager (a test's) may leave `thresholds` out, but within each
part every key is required and an unknown key is an error, so a typo cannot leave a receiver on
its placeholder or a threshold on a default nobody chose. `grafana_url` is read on its own
too (only the rules' `dashboard_url` needs it) and is required wherever rules are rendered.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

VALUES_PATH = Path(__file__).resolve().parent / "values.yml"
THRESHOLDS = "thresholds"
GRAFANA_URL = "grafana_url"  # only the rules read it, so an Alertmanager-only file may omit it


@dataclass(frozen=True, kw_only=True)
class Values:
    pager_url: str
    ticket_url: str
    deadmans_switch_url: str
    service_webhook_url: str
    service_webhook_credentials_file: str
    runbook_url_base: str  # every alert's runbook_url is this plus `#<alert name, lower case>`


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """Static numbers a deployment tunes; latency ones sit on bucket bounds (alerts/exposition)."""

    # Cold start: the SLI value that fires while neither the replica nor its fleet has a baseline.
    time_to_first_token_cold_start_seconds: float  # p95
    request_latency_cold_start_seconds: float  # p99 of whole requests: long answers are slow
    inter_token_latency_cold_start_seconds: float  # p95 time per output token
    error_ratio_cold_start: float
    queue_depth_cold_start: float
    queue_wait_cold_start_seconds: float  # p95
    # Static guards.
    gpu_utilization_high: float
    kv_cache_usage_high: float
    queue_depth_high: float
    inter_token_latency_p99_high_seconds: float  # InferwatchRequestLatencyHigh
    error_ratio_high: float  # InferwatchErrorRatioHigh (pages)
    refusal_ratio_high: float  # InferwatchRefusalRatioHigh
    host_cpu_high: float
    memory_usage_high: float  # GPU and host memory


def _read(path: Path) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text()) or {}


def _strict(data: dict[str, Any], expected: set[str], where: str) -> None:
    missing, unknown = expected - data.keys(), data.keys() - expected
    if missing or unknown:
        raise ValueError(f"{where}: missing {sorted(missing)}, unknown {sorted(unknown)}")


def load_values(path: Path = VALUES_PATH) -> Values:
    """Every receiver key, and only those (plus the optional thresholds section)."""
    data = _read(path)
    data.pop(THRESHOLDS, None)
    data.pop(GRAFANA_URL, None)
    expected = {f.name for f in fields(Values)}
    _strict(data, expected, str(path))
    return Values(**{name: str(data[name]) for name in expected})


def load_grafana_url(path: Path = VALUES_PATH) -> str:
    """Where Grafana serves the dashboards: every alert's `dashboard_url` starts with it."""
    url = _read(path).get(GRAFANA_URL)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"{path}: `{GRAFANA_URL}` must be an http(s) URL, not {url!r}")
    return url.rstrip("/")


def load_thresholds(path: Path = VALUES_PATH) -> Thresholds:
    """Every threshold, and only those, as numbers."""
    section = _read(path).get(THRESHOLDS)
    if not isinstance(section, dict):
        raise ValueError(f"{path}: no `{THRESHOLDS}` section")
    expected = {f.name for f in fields(Thresholds)}
    _strict(section, expected, f"{path} {THRESHOLDS}")
    return Thresholds(**{name: float(section[name]) for name in expected})
