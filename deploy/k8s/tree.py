"""deploy/kubernetes/: every manifest file and the kustomizations that list them.

    kustomization.yaml    the default: base/ with components/keda
    base/                 the service, its monitoring and dashboards
    components/keda/      KEDA ScaledObject on queue depth
    components/hpa/       the HPA alternative (prometheus-adapter), never beside keda
    components/fleet/     InferencePool and endpoint picker for routing across replicas
    overlays/hpa/         base/ with components/hpa
    overlays/fleet/       base/ with components/keda and components/fleet

Components, so an overlay of one's own can combine them (hpa with fleet, say) and a file is
written once. An overlay cannot sit inside the folder of the kustomization it builds on
(kustomize calls that a cycle), hence base/ apart from the default at the top.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deploy.k8s import autoscaling, fleet, monitoring, workload
from deploy.k8s.names import HEADER, Manifest, dump, to_yaml

ROOT = "deploy/kubernetes"
API_VERSIONS = {
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
    "Component": "kustomize.config.k8s.io/v1alpha1",
}

_PURPOSE = {
    "base/deployment.yaml": "The service: probes on /health and /ready, a preStop pause and a "
    "grace period that covers the drain.",
    "base/service.yaml": "The service's ClusterIP; its name is the Prometheus job the rules read.",
    "base/pdb.yaml": "Node drains take one replica at a time.",
    "base/servicemonitor.yaml": "The scrape configuration the Prometheus operator writes for us.",
    "base/prometheusrule.yaml": "Exactly the rule groups of alerts/generated/*.rules.yml.",
    "base/dashboards.yaml": "The generated Grafana dashboards, for Grafana's sidecar "
    '(label grafana_dashboard: "1").',
    "components/keda/scaledobject.yaml": "KEDA scales on queue depth (Prometheus trigger).",
    "components/hpa/hpa.yaml": "HPA alternative to KEDA: a Pods metric served by "
    "prometheus-adapter, whose rule must be:\n" + autoscaling.ADAPTER_RULE,
    "components/fleet/inferencepool.yaml": "The Gateway API Inference Extension pool over the "
    "service's pods; an HTTPRoute backendRef of kind InferencePool sends traffic through it.",
    "components/fleet/epp-config.yaml": "The endpoint picker's configuration: scorers on "
    "inferwatch's own queue, running and KV-cache metrics.",
    "components/fleet/epp.yaml": "The endpoint picker (llm-d-router) and its RBAC.",
}
_OVERLAYS = {
    "": ("base", ["keda"]),
    "overlays/hpa": ("../../base", ["hpa"]),
    "overlays/fleet": ("../../base", ["keda", "fleet"]),
}


def manifests(
    rule_files: Mapping[str, str], dashboards: Mapping[str, str]
) -> dict[str, list[Manifest]]:
    """{path under deploy/kubernetes: its documents}; no dashboards, no dashboards.yaml."""
    files: dict[str, list[Manifest]] = {
        "base/deployment.yaml": [workload.deployment()],
        "base/service.yaml": [workload.service()],
        "base/pdb.yaml": [workload.pod_disruption_budget()],
        "base/servicemonitor.yaml": [monitoring.service_monitor()],
        "base/prometheusrule.yaml": [monitoring.prometheus_rule(rule_files)],
        "base/dashboards.yaml": monitoring.dashboard_config_maps(dashboards),
        "components/keda/scaledobject.yaml": [autoscaling.scaled_object()],
        "components/hpa/hpa.yaml": [autoscaling.horizontal_pod_autoscaler()],
        "components/fleet/inferencepool.yaml": [fleet.inference_pool()],
        "components/fleet/epp-config.yaml": [fleet.epp_config_map()],
        "components/fleet/epp.yaml": fleet.epp_workload(),
    }
    return {path: documents for path, documents in files.items() if documents}


def _kustomization(kind: str, **fields: Any) -> str:
    return HEADER + to_yaml({"apiVersion": API_VERSIONS[kind], "kind": kind, **fields})


def render_tree(rule_files: Mapping[str, str], dashboards: Mapping[str, str]) -> dict[str, str]:
    """{path relative to the repository root: text} of every file under deploy/kubernetes."""
    files = manifests(rule_files, dashboards)
    out = {
        f"{ROOT}/{path}": dump(*documents, comment=_PURPOSE[path])
        for path, documents in files.items()
    }
    folders = sorted({path.rsplit("/", 1)[0] for path in files})
    for folder in folders:
        own = [path.rsplit("/", 1)[1] for path in files if path.rsplit("/", 1)[0] == folder]
        kind = "Component" if folder.startswith("components/") else "Kustomization"
        out[f"{ROOT}/{folder}/kustomization.yaml"] = _kustomization(kind, resources=own)
    for folder, (base, components) in _OVERLAYS.items():
        up = "../../" if folder else ""
        path = "/".join(part for part in (ROOT, folder, "kustomization.yaml") if part)
        out[path] = _kustomization(
            "Kustomization",
            resources=[base],
            components=[f"{up}components/{name}" for name in components],
        )
    return out
