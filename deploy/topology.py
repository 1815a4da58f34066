"""The facts every deployment shares: job names, ports, intervals, image, shutdown timing.

Local, compose and Kubernetes each take these from here, so a job name or a scrape interval is
written once and the three cannot disagree with each other or with the rules (the `up` alert
reads `job="inferwatch"`, alerts.spec.SERVICE_JOB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib.metadata import version

from alerts.spec import SERVICE_JOB as SERVICE_JOB
from alerts.spec import SPEC

# The service's numbers are written here rather than imported: importing inference.settings
# loads torch, and `inferwatch generate` should not. tests/deploy/test_topology.py holds them
# equal to the service's own (Settings defaults, the drain's cut timeout, uvicorn's close).
SERVICE_PORT = 8000
EXPORTER_PORT = 9835  # `inferwatch exporter --port` default
EXPORTER_JOB = "inferwatch-exporter"
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
GRAFANA_PORT = 3000
METRICS_PATH = "/metrics"
LIVENESS_PATH = "/health"
READINESS_PATH = "/ready"
ADMIN_ALERTS_PATH = "/admin/alerts"  # the Alertmanager webhook of the degradation controller

# 15 s scrapes give 20 samples per 5 m rate window. Rule groups set their own interval (the
# spec's Prometheus timing); the global evaluation interval matches it for any that does not.
SCRAPE_INTERVAL_SECONDS = 15.0
EVALUATION_INTERVAL_SECONDS = float(SPEC.prometheus.interval)

# Exemplars link latency buckets to traces; Prometheus keeps them only with this flag.
PROMETHEUS_FEATURE_FLAGS = ("--enable-feature=exemplar-storage",)

IMAGE = f"inferwatch:{version('inferwatch')}"

# Per replica, the waiting requests an autoscaler aims for: well under the 100 of the
# InferwatchQueueDepthHigh guard, so replicas come before the warning does.
QUEUE_DEPTH_PER_REPLICA = 10


@dataclass(frozen=True)
class Shutdown:
    """How long a replica takes to go after it is told to, and the grace that covers it.

    A SIGTERM starts the service's drain (`shutdown_grace_seconds`), whatever is still running
    is then cut and given CUT_TIMEOUT_SECONDS to end, uvicorn closes idle connections and the
    trace exporter flushes (`span_flush_seconds`). The preStop pause comes first so that load
    balancers stop sending before the service starts refusing.
    """

    pre_stop_seconds: int = 5
    drain_seconds: float = 25.0  # Settings.shutdown_grace_seconds
    cut_seconds: float = 5.0  # inference.api.drain.CUT_TIMEOUT_SECONDS
    close_seconds: float = 2.0  # uvicorn's timeout_graceful_shutdown (inferwatch serve)
    span_flush_seconds: float = 3.0  # Settings.span_flush_seconds
    margin_seconds: int = 5

    @property
    def needed_seconds(self) -> float:
        return (
            self.pre_stop_seconds
            + self.drain_seconds
            + self.cut_seconds
            + self.close_seconds
            + self.span_flush_seconds
        )

    @property
    def grace_seconds(self) -> int:
        """terminationGracePeriodSeconds (and compose's stop_grace_period)."""
        return math.ceil(self.needed_seconds) + self.margin_seconds


SHUTDOWN = Shutdown()

# docker-compose service names, which are also the hostnames on the compose network.
COMPOSE_SERVICE = "inferwatch"
COMPOSE_PROMETHEUS = "prometheus"
COMPOSE_ALERTMANAGER = "alertmanager"
COMPOSE_GRAFANA = "grafana"
COMPOSE_JAEGER = "jaeger"
COMPOSE_GPU_EXPORTER = "gpu-exporter"

# Where the generated configurations land (relative to the repository root) and where the
# compose containers see them.
GENERATED = "deploy/generated"
PROMETHEUS_LOCAL = f"{GENERATED}/prometheus.local.yml"
PROMETHEUS_COMPOSE = f"{GENERATED}/prometheus.compose.yml"
ALERTMANAGER_COMPOSE = f"{GENERATED}/alertmanager.compose.yml"
COMPOSE_RULES_DIR = "/etc/prometheus/rules"
