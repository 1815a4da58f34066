"""Scaling on queue depth: a KEDA ScaledObject (the default) and, for clusters without KEDA,
an autoscaling/v2 HPA on a Pods metric served by prometheus-adapter. Use one, never both: two
autoscalers on one Deployment fight over its replica count.

Queue depth, not CPU: a replica whose batch is full queues requests while its CPU looks the
same, and the queue is what users wait in. The target is topology.QUEUE_DEPTH_PER_REPLICA
waiting requests per replica.
"""

from __future__ import annotations

from deploy import topology as t
from deploy.k8s.names import APP, Manifest, manifest, metadata

MIN_REPLICAS = 2  # with the PodDisruptionBudget's minAvailable 1, a drain keeps one serving
MAX_REPLICAS = 10
SCALE_DOWN_WINDOW_SECONDS = 300  # a queue that empties for a minute does not shed replicas
# The operator's `prometheus-operated` Service, for a Prometheus in namespace `monitoring`.
PROMETHEUS_URL = "http://prometheus-operated.monitoring.svc:9090"
QUEUE_METRIC = "inferwatch_queue_depth"

_TARGET = {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP}
_SCALE_DOWN = {"scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW_SECONDS}}

# prometheus-adapter's rule for the HPA: the per-pod queue (summed over priorities) as the
# custom metric `inferwatch_queue_depth` of each pod.
ADAPTER_RULE = f"""\
rules:
- seriesQuery: '{QUEUE_METRIC}{{namespace!="",pod!=""}}'
  resources:
    overrides:
      namespace: {{resource: namespace}}
      pod: {{resource: pod}}
  name:
    matches: "^{QUEUE_METRIC}$"
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{{<<.LabelMatchers>>}})'
"""


def scaled_object() -> Manifest:
    """The total queue over the job, which KEDA divides by the replicas (AverageValue)."""
    return manifest(
        "keda.sh/v1alpha1",
        "ScaledObject",
        metadata(APP),
        spec={
            "scaleTargetRef": _TARGET,
            "minReplicaCount": MIN_REPLICAS,
            "maxReplicaCount": MAX_REPLICAS,
            "pollingInterval": int(t.SCRAPE_INTERVAL_SECONDS),
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _SCALE_DOWN}},
            "triggers": [
                {
                    "type": "prometheus",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": PROMETHEUS_URL,
                        "query": f'sum({QUEUE_METRIC}{{job="{t.SERVICE_JOB}"}})',
                        "threshold": str(t.QUEUE_DEPTH_PER_REPLICA),
                        # A lost target is an error (replicas held), not a queue of zero.
                        "ignoreNullValues": "false",
                    },
                }
            ],
        },
    )


def horizontal_pod_autoscaler() -> Manifest:
    """A Pods metric (per-pod value averaged by the HPA), not External: the adapter maps each
    pod's own series to it, so no query has to know the namespace or the job."""
    return manifest(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        metadata(APP),
        spec={
            "scaleTargetRef": _TARGET,
            "minReplicas": MIN_REPLICAS,
            "maxReplicas": MAX_REPLICAS,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": QUEUE_METRIC},
                        "target": {
                            "type": "AverageValue",
                            "averageValue": str(t.QUEUE_DEPTH_PER_REPLICA),
                        },
                    },
                }
            ],
            "behavior": _SCALE_DOWN,
        },
    )
