"""What the manifests promise about the service: shutdown timing that covers its drain,
probes on the right endpoints, monitoring of the job the rules read, rules and dashboards
carried over unchanged."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from alerts.spec import SERVICE_JOB
from deploy import topology as t
from deploy.k8s import autoscaling
from deploy.k8s.tree import render_tree
from inference.api.drain import CUT_TIMEOUT_SECONDS
from inference.settings import Settings, env_name
from inferwatch.commands.serve import server_config
from tests.deploy.manifests import K8S, REPO, build, documents, one

BASE = build(K8S)


def container() -> dict[str, Any]:
    (c,) = one(BASE, "Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def env() -> dict[str, str]:
    return {e["name"]: e["value"] for e in container()["env"] if "value" in e}


def grace_shortfall(deployment: dict[str, Any]) -> float:
    """Seconds by which the grace period misses preStop + drain + cut + close + span flush:
    the numbers the service is given, plus those fixed in its code (<= 0 when covered)."""
    pod = deployment["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    given = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    command = c["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    drain = float(given[env_name("shutdown_grace_seconds")])
    flush = float(given[env_name("span_flush_seconds")])
    close = server_config(app=None, settings=Settings()).timeout_graceful_shutdown
    needed = float(command[1]) + drain + CUT_TIMEOUT_SECONDS + close + flush
    return needed - pod["terminationGracePeriodSeconds"]


def test_grace_period_covers_prestop_drain_cut_close_and_span_flush() -> None:
    assert grace_shortfall(one(BASE, "Deployment")) < 0


def test_a_grace_period_shorter_than_the_drain_is_caught() -> None:
    broken = copy.deepcopy(one(BASE, "Deployment"))
    broken["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30  # the default
    assert grace_shortfall(broken) > 0


def test_drain_and_flush_are_the_service_defaults() -> None:
    settings = Settings()
    assert float(env()[env_name("shutdown_grace_seconds")]) == settings.shutdown_grace_seconds
    assert float(env()[env_name("span_flush_seconds")]) == settings.span_flush_seconds


def test_service_listens_beyond_loopback_on_the_probed_port() -> None:
    assert env()[env_name("host")] == "0.0.0.0"
    (port,) = container()["ports"]
    assert port["containerPort"] == int(env()[env_name("port")]) == Settings().port
    for probe, path in (("livenessProbe", "/health"), ("startupProbe", "/health"),
                        ("readinessProbe", "/ready")):  # fmt: skip
        assert container()[probe]["httpGet"] == {"path": path, "port": port["name"]}


def test_admin_token_file_is_the_mounted_secret() -> None:
    token = Path(env()[env_name("admin_token_file")])
    (mount,) = [m for m in container()["volumeMounts"] if m["name"] == "admin-token"]
    assert token.parent == Path(mount["mountPath"])
    volumes = one(BASE, "Deployment")["spec"]["template"]["spec"]["volumes"]
    (volume,) = [v for v in volumes if v["name"] == "admin-token"]
    assert "secretName" in volume["secret"]


def test_service_monitor_scrapes_the_job_the_rules_read() -> None:
    service, monitor = one(BASE, "Service"), one(BASE, "ServiceMonitor")
    assert service["metadata"]["name"] == SERVICE_JOB  # the operator's default job label
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["interval"] == f"{int(t.SCRAPE_INTERVAL_SECONDS)}s"


def test_pod_disruption_budget_and_selectors_match_the_pods() -> None:
    pods = one(BASE, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget"):
        spec = one(BASE, kind)["spec"]
        selector = spec["selector"].get("matchLabels", spec["selector"])
        assert selector.items() <= pods.items(), kind


def test_prometheus_rule_carries_exactly_the_generated_groups() -> None:
    generated = [
        group
        for path in sorted((REPO / "alerts" / "generated").glob("*.rules.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
    ]
    assert one(BASE, "PrometheusRule")["spec"]["groups"] == generated


def test_one_dashboard_config_map_per_generated_dashboard() -> None:
    """Another part generates the dashboards; until it has, there are none and no file."""
    dashboards = {p.name: p.read_text() for p in (REPO / "dashboards/generated").glob("*.json")}
    maps = [obj for obj in BASE if obj["kind"] == "ConfigMap"]
    assert {name: text for m in maps for name, text in m["data"].items()} == dashboards
    for config_map in maps:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert len(yaml.safe_dump(config_map)) < 256 * 1024  # kubectl apply's annotation limit
    assert (K8S / "base" / "dashboards.yaml").exists() == bool(dashboards)


def test_autoscalers_scale_the_deployment_on_queue_depth() -> None:
    (scaled,) = documents(K8S / "components" / "keda" / "scaledobject.yaml")
    (hpa,) = documents(K8S / "components" / "hpa" / "hpa.yaml")
    name = one(BASE, "Deployment")["metadata"]["name"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == hpa["spec"]["scaleTargetRef"]["name"] == name
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert autoscaling.QUEUE_METRIC in trigger["metadata"]["query"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == autoscaling.QUEUE_METRIC
    target = str(t.QUEUE_DEPTH_PER_REPLICA)
    assert trigger["metadata"]["threshold"] == metric["pods"]["target"]["averageValue"] == target


def test_dashboards_once_generated_become_listed_config_maps() -> None:
    """The path taken once the dashboards exist (they may not yet): a sample one renders a
    valid ConfigMap that the base kustomization lists."""
    sample = {"dashboards/generated/inferwatch_overview.json": '{"title": "Overview"}\n'}
    tree = render_tree({}, sample)
    base = yaml.safe_load(tree["deploy/kubernetes/base/kustomization.yaml"])
    assert "dashboards.yaml" in base["resources"]
    (config_map,) = [
        d for d in yaml.safe_load_all(tree["deploy/kubernetes/base/dashboards.yaml"]) if d
    ]
    kubernetes_validate.validate(config_map, "1.37.0", strict=True)
    assert config_map["metadata"]["name"] == "inferwatch-dashboard-inferwatch-overview"
    assert config_map["data"] == {"inferwatch_overview.json": '{"title": "Overview"}\n'}
