"""Small JSON schemas of the custom resources deploy/kubernetes uses: the fields each CRD
requires, the enums that matter, and the full set of spec fields where a typo would otherwise
pass unseen. Written down from the published CRDs (openAPIV3Schema), not downloaded:

- ServiceMonitor, PrometheusRule: prometheus-operator/prometheus-operator,
  example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml
  (monitoring.coreos.com/v1, main of August 2026, after v0.93.0).
- ScaledObject: kedacore/keda, config/crd/bases/keda.sh_scaledobjects.yaml (keda.sh/v1alpha1,
  main of August 2026, after v2.20.1).
- InferencePool: kubernetes-sigs/gateway-api-inference-extension,
  config/crd/bases/inference.networking.k8s.io_inferencepools.yaml
  (inference.networking.k8s.io/v1, main of August 2026, after v1.6.0).
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def _resource(api_version: str, kind: str, spec: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string", "minLength": 1}},
            },
            "spec": spec,
        },
    }


def _closed(required: list[str], properties: Schema) -> Schema:
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }


_LABEL_SELECTOR = {
    "type": "object",
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array"},
    },
    "additionalProperties": False,
}
_DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?"
             r"(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}  # fmt: skip

_MONITOR_FIELDS = (
    "attachMetadata", "bodySizeLimit", "convertClassicHistogramsToNHCB", "endpoints",
    "fallbackScrapeProtocol", "jobLabel", "keepDroppedTargets", "labelLimit",
    "labelNameLengthLimit", "labelValueLengthLimit", "namespaceSelector",
    "nativeHistogramBucketLimit", "nativeHistogramMinBucketFactor", "podTargetLabels",
    "sampleLimit", "scrapeClass", "scrapeClassicHistograms", "scrapeNativeHistograms",
    "scrapeProtocols", "selector", "selectorMechanism", "serviceDiscoveryRole", "targetLabels",
    "targetLimit",
)  # fmt: skip
_ENDPOINT_FIELDS = (
    "authorization", "basicAuth", "bearerTokenFile", "bearerTokenSecret", "enableHttp2",
    "filterRunning", "followRedirects", "honorLabels", "honorTimestamps", "interval",
    "metricRelabelings", "noProxy", "oauth2", "params", "path", "port", "proxyConnectHeader",
    "proxyFromEnvironment", "proxyUrl", "relabelings", "scheme", "scrapeTimeout", "targetPort",
    "tlsConfig", "trackTimestampsStaleness",
)  # fmt: skip
SERVICE_MONITOR = _resource(
    "monitoring.coreos.com/v1",
    "ServiceMonitor",
    _closed(
        ["endpoints", "selector"],
        {
            **dict.fromkeys(_MONITOR_FIELDS, {}),
            "selector": _LABEL_SELECTOR,
            "endpoints": {
                "type": "array",
                "items": _closed(
                    [],
                    {
                        **dict.fromkeys(_ENDPOINT_FIELDS, {}),
                        "port": {"type": "string"},
                        "path": {"type": "string"},
                        "interval": _DURATION,
                        "scrapeTimeout": _DURATION,
                    },
                ),
            },
        },
    ),
)

_RULE = {
    "type": "object",
    "required": ["expr"],
    "properties": {
        "record": {"type": "string"},
        "alert": {"type": "string"},
        "expr": {"type": "string"},
        "for": _DURATION,
        "keep_firing_for": _DURATION,
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
    "oneOf": [{"required": ["record"]}, {"required": ["alert"]}],
}
PROMETHEUS_RULE = _resource(
    "monitoring.coreos.com/v1",
    "PrometheusRule",
    _closed(
        ["groups"],
        {
            "groups": {
                "type": "array",
                "minItems": 1,
                "items": _closed(
                    ["name"],
                    {
                        "name": {"type": "string", "minLength": 1},
                        "interval": _DURATION,
                        "limit": {"type": "integer"},
                        "query_offset": _DURATION,
                        "partial_response_strategy": {"type": "string"},
                        "labels": {"type": "object"},
                        "rules": {"type": "array", "items": _RULE},
                    },
                ),
            }
        },
    ),
)

SCALED_OBJECT = _resource(
    "keda.sh/v1alpha1",
    "ScaledObject",
    _closed(
        ["scaleTargetRef", "triggers"],
        {
            "scaleTargetRef": _closed(
                ["name"],
                {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "name": {"type": "string"},
                    "envSourceContainerName": {"type": "string"},
                },
            ),
            "minReplicaCount": {"type": "integer", "minimum": 0},
            "maxReplicaCount": {"type": "integer", "minimum": 1},
            "pollingInterval": {"type": "integer"},
            "cooldownPeriod": {"type": "integer"},
            "initialCooldownPeriod": {"type": "integer"},
            "idleReplicaCount": {"type": "integer"},
            "advanced": {"type": "object"},
            "fallback": {"type": "object", "required": ["failureThreshold", "replicas"]},
            "triggers": {
                "type": "array",
                "minItems": 1,
                "items": _closed(
                    ["metadata", "type"],
                    {
                        "type": {"type": "string"},
                        "name": {"type": "string"},
                        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                        "useCachedMetrics": {"type": "boolean"},
                        "authenticationRef": {"type": "object"},
                        # KEDA reads trigger metadata as strings; a bare number is an error.
                        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                ),
            },
        },
    ),
)

_PORT = _closed(["number"], {"number": {"type": "integer", "minimum": 1, "maximum": 65535}})
INFERENCE_POOL = _resource(
    "inference.networking.k8s.io/v1",
    "InferencePool",
    _closed(
        ["selector", "targetPorts"],
        {
            "selector": _closed(
                ["matchLabels"],
                {
                    "matchLabels": {
                        "type": "object",
                        "maxProperties": 64,
                        "additionalProperties": {"type": "string"},
                    }
                },
            ),  # fmt: skip
            "targetPorts": {"type": "array", "minItems": 1, "maxItems": 8, "items": _PORT},
            "appProtocol": {"enum": ["http", "kubernetes.io/h2c"]},
            "endpointPickerRef": _closed(
                ["name"],
                {
                    "group": {"type": "string"},
                    "kind": {"type": "string"},
                    "name": {"type": "string", "minLength": 1, "maxLength": 253},
                    "port": _PORT,
                    "failureMode": {"enum": ["FailOpen", "FailClose"]},
                },
            ),
        },
    ),
)

BY_KIND: dict[str, Schema] = {
    "ServiceMonitor": SERVICE_MONITOR,
    "PrometheusRule": PROMETHEUS_RULE,
    "ScaledObject": SCALED_OBJECT,
    "InferencePool": INFERENCE_POOL,
}
