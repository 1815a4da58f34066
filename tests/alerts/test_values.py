"""alerts/values.yml: receivers and thresholds, each part strict, the thresholds in the rules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from alerts.spec import THRESHOLDS, build_spec
from alerts.values import VALUES_PATH, Thresholds, load_grafana_url, load_thresholds, load_values


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "values.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_committed_values_hold_every_threshold() -> None:
    assert load_thresholds() == THRESHOLDS
    assert {f.name for f in dataclasses.fields(Thresholds)} == set(
        yaml.safe_load(VALUES_PATH.read_text())["thresholds"]
    )


def test_thresholds_are_strict(tmp_path: Path) -> None:
    data = yaml.safe_load(VALUES_PATH.read_text())
    typo = {**data, "thresholds": {**data["thresholds"], "error_ratio_hgih": 0.05}}
    with pytest.raises(ValueError, match="unknown \\['error_ratio_hgih'\\]"):
        load_thresholds(_write(tmp_path, typo))
    missing = dict(data["thresholds"])
    del missing["queue_depth_high"]
    with pytest.raises(ValueError, match="missing \\['queue_depth_high'\\]"):
        load_thresholds(_write(tmp_path, {**data, "thresholds": missing}))
    receivers_only = {k: v for k, v in data.items() if k != "thresholds"}
    with pytest.raises(ValueError, match="no `thresholds` section"):
        load_thresholds(_write(tmp_path, receivers_only))
    assert load_values(_write(tmp_path, receivers_only)) == load_values()  # Alertmanager's part


def test_the_rules_take_the_thresholds() -> None:
    changed = dataclasses.replace(
        THRESHOLDS, error_ratio_high=0.08, request_latency_cold_start_seconds=56.0
    )
    spec = build_spec(changed)
    guard = next(g for g in spec.guards if g.name == "InferwatchErrorRatioHigh")
    assert "> 0.08 and" in guard.expr and "8%" in guard.summary
    latency = next(s for s in spec.baselines if s.alert == "InferwatchRequestLatencyAboveBaseline")
    assert latency.cold_start_threshold == 56.0


def test_the_grafana_url_is_required_where_rules_are_rendered(tmp_path: Path) -> None:
    """Only the rules need it: an Alertmanager-only file may leave it out, a rules one not."""
    data = yaml.safe_load(VALUES_PATH.read_text())
    assert load_grafana_url() == data["grafana_url"].rstrip("/")
    without = {k: v for k, v in data.items() if k != "grafana_url"}
    assert load_values(_write(tmp_path, without)) == load_values()
    with pytest.raises(ValueError, match="grafana_url"):
        load_grafana_url(_write(tmp_path, without))
    with pytest.raises(ValueError, match="http"):
        load_grafana_url(_write(tmp_path, {**data, "grafana_url": "grafana:3000"}))
