"""The service's Deployment, Service and PodDisruptionBudget.

Shutdown is the delicate part. On a pod's deletion its endpoints are marked terminating at
once, but proxies and the endpoint picker learn it a moment later, so the preStop pause lets
them stop sending before SIGTERM starts the service's drain (`/ready` 503, new work refused
with Retry-After, accepted work given `shutdown_grace_seconds`). terminationGracePeriodSeconds
covers the pause, the drain, the cut, the close and the span flush (topology.Shutdown); the
service is told its drain and flush times explicitly so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from deploy import topology as t
from deploy.k8s.names import (
    ADMIN_TOKEN_DIR,
    ADMIN_TOKEN_SECRET,
    APP,
    HTTP_PORT,
    SELECTOR,
    Manifest,
    manifest,
    metadata,
)

# Pods label themselves with the endpoint picker's engine type (deploy/k8s/fleet.py).
ENGINE_TYPE_LABEL = {"llm-d.ai/engine-type": APP}


def _http_probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": HTTP_PORT},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def _env() -> list[dict[str, str]]:
    values = {
        "INFERWATCH_HOST": "0.0.0.0",
        "INFERWATCH_PORT": str(t.SERVICE_PORT),
        "INFERWATCH_SHUTDOWN_GRACE_SECONDS": str(t.SHUTDOWN.drain_seconds),
        "INFERWATCH_SPAN_FLUSH_SECONDS": str(t.SHUTDOWN.span_flush_seconds),
        "INFERWATCH_ADMIN_TOKEN_FILE": f"{ADMIN_TOKEN_DIR}/token",
        "OTEL_SERVICE_NAME": APP,
    }
    return [{"name": name, "value": value} for name, value in values.items()]


def container() -> dict[str, Any]:
    return {
        "name": APP,
        "image": t.IMAGE,
        "args": ["serve"],
        "ports": [{"name": HTTP_PORT, "containerPort": t.SERVICE_PORT, "protocol": "TCP"}],
        "env": _env(),
        # The model loads before the server listens; up to 5 minutes for a first start.
        "startupProbe": _http_probe(t.LIVENESS_PATH, period=5, failures=60),
        "livenessProbe": _http_probe(t.LIVENESS_PATH, period=10, failures=3),
        "readinessProbe": _http_probe(t.READINESS_PATH, period=5, failures=2),
        "lifecycle": {
            "preStop": {"exec": {"command": ["sleep", str(t.SHUTDOWN.pre_stop_seconds)]}}
        },
        "resources": {
            "requests": {"cpu": "2", "memory": "4Gi"},
            "limits": {"memory": "8Gi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "admin-token", "mountPath": ADMIN_TOKEN_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def deployment() -> Manifest:
    """No `replicas`: the autoscaler owns the count, and an apply must not reset it."""
    return manifest(
        "apps/v1",
        "Deployment",
        metadata(APP),
        spec={
            "selector": {"matchLabels": SELECTOR},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": {**metadata(APP)["labels"], **ENGINE_TYPE_LABEL}},
                "spec": {
                    "terminationGracePeriodSeconds": t.SHUTDOWN.grace_seconds,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container()],
                    "volumes": [
                        {"name": "admin-token", "secret": {"secretName": ADMIN_TOKEN_SECRET}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    )


def service() -> Manifest:
    return manifest(
        "v1",
        "Service",
        metadata(APP),
        spec={
            "selector": SELECTOR,
            "ports": [
                {
                    "name": HTTP_PORT,
                    "port": t.SERVICE_PORT,
                    "targetPort": HTTP_PORT,
                    "protocol": "TCP",
                }
            ],
        },
    )


def pod_disruption_budget() -> Manifest:
    """A node drain may take one replica at a time, never the last one."""
    return manifest(
        "policy/v1",
        "PodDisruptionBudget",
        metadata(APP),
        spec={"minAvailable": 1, "selector": {"matchLabels": SELECTOR}},
    )
