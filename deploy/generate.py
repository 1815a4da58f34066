"""`deploy.generate:render`, registered in inferwatch/commands/generate.py: every file deploy/
generates (the local and compose Prometheus configurations, the compose Alertmanager
configuration, docker-compose.yml and deploy/kubernetes/)."""

from __future__ import annotations

from deploy import compose, prometheus_config, upstream
from deploy import topology as t
from deploy.k8s.tree import render_tree


def render() -> dict[str, str]:
    rules = upstream.files(upstream.RULE_FILES)
    files = {
        t.PROMETHEUS_LOCAL: prometheus_config.local_config(list(rules)),
        t.PROMETHEUS_COMPOSE: prometheus_config.compose_config(list(rules)),
        t.ALERTMANAGER_COMPOSE: compose.render_alertmanager(),
        "docker-compose.yml": compose.render_compose(),
    }
    files.update(render_tree(rules, upstream.files(upstream.DASHBOARDS)))
    return files
