"""Routing across replicas with the Gateway API Inference Extension: an InferencePool over the
service's pods and llm-d-router's endpoint picker (EPP), told to read inferwatch's own metrics.

Checked against llm-d-router v0.10.0 (the EPP's home since it left
kubernetes-sigs/gateway-api-inference-extension after v1.5) and that repository's
InferencePool CRD (inference.networking.k8s.io/v1). The `--total-queued-requests-metric`,
`--total-running-requests-metric` and `--kv-cache-usage-percentage-metric` flags of EPP v1.0 to
v1.2 are rejected from v1.4 on; the mapping lives in the EndpointPickerConfig as an
`engineConfigs` entry of the `core-metrics-extractor` plugin, selected by the pods'
`llm-d.ai/engine-type` label (and `defaultEngine` for pods without it).

The EPP reads one series per metric name (the first that matches the spec's labels; it does
not sum), so it reads `inferwatch_requests_waiting` (one series per model), not the
per-priority `inferwatch_queue_depth`.
"""

from __future__ import annotations

from typing import Any

from deploy import topology as t
from deploy.k8s.names import APP, SELECTOR, Manifest, manifest, metadata, to_yaml
from deploy.k8s.workload import ENGINE_TYPE_LABEL

POOL = f"{APP}-pool"
EPP = f"{APP}-epp"
EPP_IMAGE = "ghcr.io/llm-d/llm-d-router-endpoint-picker:v0.10.0"
EPP_GRPC_PORT, EPP_HEALTH_PORT, EPP_METRICS_PORT = 9002, 9003, 9090
EPP_CONFIG_FILE = "epp-config.yaml"
EPP_LABELS = {"app.kubernetes.io/name": EPP}

# What the picker calls each signal -> inferwatch's metric (docs/metrics.md).
METRIC_MAPPING = {
    "queuedRequestsSpec": "inferwatch_requests_waiting",
    "runningRequestsSpec": "inferwatch_requests_running",
    "kvUsageSpec": "inferwatch_kv_cache_usage_ratio",  # 0..1, as the picker expects
}


def _epp_meta() -> dict[str, Any]:
    return metadata(EPP, labels=EPP_LABELS)


def inference_pool() -> Manifest:
    return manifest(
        "inference.networking.k8s.io/v1",
        "InferencePool",
        metadata(POOL),
        spec={
            "selector": {"matchLabels": SELECTOR},
            "targetPorts": [{"number": t.SERVICE_PORT}],
            "appProtocol": "http",
            "endpointPickerRef": {
                "kind": "Service",
                "name": EPP,
                "port": {"number": EPP_GRPC_PORT},
                # No picker, no routing: a request fails rather than landing anywhere.
                "failureMode": "FailClose",
            },
        },
    )


def endpoint_picker_config() -> dict[str, Any]:
    engine = ENGINE_TYPE_LABEL["llm-d.ai/engine-type"]
    return {
        "apiVersion": "llm-d.ai/v1alpha1",
        "kind": "EndpointPickerConfig",
        "plugins": [
            {
                "type": "metrics-data-source",
                "parameters": {"scheme": "http", "path": t.METRICS_PATH},
            },
            {
                "type": "core-metrics-extractor",
                "parameters": {
                    "defaultEngine": engine,
                    "engineConfigs": [{"name": engine, **METRIC_MAPPING}],
                },
            },
            {"type": "queue-scorer"},
            {"type": "kv-cache-utilization-scorer"},
            {"type": "max-score-picker"},
        ],
        "schedulingProfiles": [
            {
                "name": "default",
                "plugins": [
                    {"pluginRef": "queue-scorer", "weight": 1},
                    {"pluginRef": "kv-cache-utilization-scorer", "weight": 1},
                    {"pluginRef": "max-score-picker"},
                ],
            }
        ],
    }


def epp_config_map() -> Manifest:
    text = to_yaml(endpoint_picker_config())
    return manifest("v1", "ConfigMap", _epp_meta(), data={EPP_CONFIG_FILE: text})


def _grpc_probe(period: int) -> dict[str, Any]:
    return {
        "grpc": {"port": EPP_HEALTH_PORT, "service": "inference-extension"},
        "periodSeconds": period,
    }


def epp_workload() -> list[Manifest]:
    """The picker's ServiceAccount and RBAC (it watches pods and its pool), Deployment and
    Service, as llm-d-router's Helm chart lays them out, one replica, metrics without auth."""
    rbac = "rbac.authorization.k8s.io/v1"
    read = ["get", "watch", "list"]
    container = {
        "name": "epp",
        "image": EPP_IMAGE,
        "args": [
            "--pool-name", POOL,
            "--pool-group", "inference.networking.k8s.io",
            "--config-file", f"/config/{EPP_CONFIG_FILE}",
            "--grpc-port", str(EPP_GRPC_PORT),
            "--grpc-health-port", str(EPP_HEALTH_PORT),
            "--metrics-port", str(EPP_METRICS_PORT),
            "--metrics-endpoint-auth=false",
            "--tracing=false",
        ],
        "env": [
            {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "ports": [
            {"name": "grpc", "containerPort": EPP_GRPC_PORT},
            {"name": "grpc-health", "containerPort": EPP_HEALTH_PORT},
            {"name": "metrics", "containerPort": EPP_METRICS_PORT},
        ],
        "livenessProbe": _grpc_probe(10),
        "readinessProbe": _grpc_probe(2),
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
        "volumeMounts": [{"name": "config", "mountPath": "/config", "readOnly": True}],
    }  # fmt: skip
    return [
        manifest("v1", "ServiceAccount", _epp_meta()),
        manifest(
            rbac,
            "Role",
            _epp_meta(),
            rules=[
                {"apiGroups": [""], "resources": ["pods"], "verbs": read},
                {
                    "apiGroups": ["inference.networking.k8s.io"],
                    "resources": ["inferencepools"],
                    "verbs": read,
                },
                {
                    "apiGroups": ["llm-d.ai"],
                    "resources": ["inferenceobjectives", "inferencemodelrewrites"],
                    "verbs": read,
                },
            ],
        ),
        manifest(
            rbac,
            "RoleBinding",
            _epp_meta(),
            subjects=[{"kind": "ServiceAccount", "name": EPP}],
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": EPP},
        ),
        manifest(
            "apps/v1",
            "Deployment",
            _epp_meta(),
            spec={
                "replicas": 1,
                "selector": {"matchLabels": EPP_LABELS},
                "template": {
                    "metadata": {"labels": EPP_LABELS},
                    "spec": {
                        "serviceAccountName": EPP,
                        "containers": [container],
                        "volumes": [{"name": "config", "configMap": {"name": EPP}}],
                    },
                },
            },
        ),
        manifest(
            "v1",
            "Service",
            _epp_meta(),
            spec={
                "selector": EPP_LABELS,
                "ports": [
                    {
                        "name": "grpc-ext-proc",
                        "port": EPP_GRPC_PORT,
                        "protocol": "TCP",
                        "appProtocol": "kubernetes.io/h2c",
                    },
                    {"name": "http-metrics", "port": EPP_METRICS_PORT, "protocol": "TCP"},
                ],
            },
        ),
    ]
