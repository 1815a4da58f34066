"""The endpoint picker reads inferwatch's own metrics, by names the service exports."""

from __future__ import annotations

from typing import Any

import yaml

from deploy.k8s import fleet
from inference.telemetry.catalog import CATALOG
from tests.deploy.manifests import K8S, build, one

FLEET = build(K8S / "overlays" / "fleet")


def picker_config() -> dict[str, Any]:
    # The endpoint picker's ConfigMap (the dashboards come as ConfigMaps too).
    maps = [o for o in FLEET if o["kind"] == "ConfigMap" and fleet.EPP_CONFIG_FILE in o["data"]]
    config_map = one(maps, "ConfigMap")
    return yaml.safe_load(config_map["data"][fleet.EPP_CONFIG_FILE])


def extractor() -> dict[str, Any]:
    (plugin,) = [p for p in picker_config()["plugins"] if p["type"] == "core-metrics-extractor"]
    return plugin["parameters"]


def test_metric_mapping_names_inferwatch_gauges() -> None:
    (engine,) = extractor()["engineConfigs"]
    gauges = {m.name for m in CATALOG if m.type == "gauge"}
    assert engine == {"name": engine["name"], **fleet.METRIC_MAPPING}
    assert fleet.METRIC_MAPPING == {
        "queuedRequestsSpec": "inferwatch_requests_waiting",
        "runningRequestsSpec": "inferwatch_requests_running",
        "kvUsageSpec": "inferwatch_kv_cache_usage_ratio",
    }
    assert set(fleet.METRIC_MAPPING.values()) <= gauges
    # The picker reads one series per name: each family has one series per model.
    labels = {m.name: m.labels for m in CATALOG}
    assert all(labels[name] == ("model",) for name in fleet.METRIC_MAPPING.values())


def test_pods_carry_the_engine_type_the_mapping_is_for() -> None:
    (engine,) = extractor()["engineConfigs"]
    pods = one([o for o in FLEET if o["metadata"]["name"] == "inferwatch"], "Deployment")
    assert pods["spec"]["template"]["metadata"]["labels"]["llm-d.ai/engine-type"] == engine["name"]
    assert extractor()["defaultEngine"] == engine["name"]


def test_every_profile_plugin_is_declared() -> None:
    config = picker_config()
    declared = {p["type"] for p in config["plugins"]}
    (profile,) = config["schedulingProfiles"]
    assert {ref["pluginRef"] for ref in profile["plugins"]} <= declared


def test_pool_selects_the_service_pods_and_points_at_the_picker() -> None:
    pool = one(FLEET, "InferencePool")
    deployments = {o["metadata"]["name"]: o for o in FLEET if o["kind"] == "Deployment"}
    pods = deployments["inferwatch"]["spec"]["template"]["metadata"]["labels"]
    assert pool["spec"]["selector"]["matchLabels"].items() <= pods.items()
    epp_pods = deployments[fleet.EPP]["spec"]["template"]["metadata"]["labels"]
    assert not pool["spec"]["selector"]["matchLabels"].items() <= epp_pods.items()
    (port,) = deployments["inferwatch"]["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert pool["spec"]["targetPorts"] == [{"number": port["containerPort"]}]
    services = {o["metadata"]["name"]: o for o in FLEET if o["kind"] == "Service"}
    picker = services[pool["spec"]["endpointPickerRef"]["name"]]
    ports = {p["port"] for p in picker["spec"]["ports"]}
    assert pool["spec"]["endpointPickerRef"]["port"]["number"] in ports


def test_picker_is_configured_by_file_not_by_the_rejected_flags() -> None:
    """llm-d-router (and EPP from v1.4) refuses the old metric flags outright."""
    (picker,) = [
        o for o in FLEET if o["kind"] == "Deployment" and o["metadata"]["name"] == fleet.EPP
    ]
    (container,) = picker["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert f"/config/{fleet.EPP_CONFIG_FILE}" == args[args.index("--config-file") + 1]
    rejected = ("--total-queued-requests-metric", "--total-running-requests-metric",
                "--kv-cache-usage-percentage-metric")  # fmt: skip
    assert not [a for a in args if a.startswith(rejected)]
