"""Render the Alertmanager 0.25 routing tree, receivers and inhibitions.

The service webhook hears every alert with an `action` label and the Watchdog; the pager, the
tickets and the dead-man's switch hear the rest by severity.

Where notifications go (URLs, the webhook's bearer-token file) is deployment data and comes from
a values file (alerts/values.py); who gets what (the tree) is policy and lives here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from alerts.rules import HEADER
from alerts.spec import Severity
from alerts.values import VALUES_PATH, Values, load_values

WATCHDOG = "InferwatchWatchdog"
SERVICE_DOWN = "InferwatchServiceDown"


def _webhook(url: str, send_resolved: bool, **extra: Any) -> dict[str, Any]:
    return {"webhook_configs": [{"url": url, "send_resolved": send_resolved, **extra}]}


def config(values: Values) -> dict[str, Any]:
    severity = {s: f'severity="{s.value}"' for s in Severity}
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "blackhole",
            "group_by": ["alertname", "instance", "model"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {
                    # The dead-man's switch expects a steady heartbeat; it pages on silence.
                    "receiver": "deadmans-switch",
                    "matchers": [f'alertname="{WATCHDOG}"'],
                    "group_wait": "0s",
                    "group_interval": "1m",
                    "repeat_interval": "1m",
                    "continue": True,
                },
                {
                    # The same heartbeat for the degradation controller: when notifications
                    # stop while the Watchdog is silent too, the pipeline broke (not the
                    # breach), and the controller freezes its level instead of relaxing it
                    # (inference/admission/notifications.py). Every minute, well inside the
                    # controller's 11-minute Watchdog timeout; resolved when Prometheus dies.
                    "receiver": "service-webhook",
                    "matchers": [f'alertname="{WATCHDOG}"'],
                    "group_wait": "0s",
                    "group_interval": "1m",
                    "repeat_interval": "1m",
                },
                {
                    # The controller must hear every breach at once, whatever its severity.
                    "receiver": "service-webhook",
                    "matchers": ['action=~".+"'],
                    "group_by": ["alertname", "instance", "model", "action"],
                    "group_wait": "0s",
                    "group_interval": "10s",
                    "repeat_interval": "5m",
                    "continue": True,
                },
                {
                    "receiver": "pager",
                    "matchers": [severity[Severity.CRITICAL]],
                    "repeat_interval": "1h",
                },
                {
                    "receiver": "tickets",
                    "matchers": [severity[Severity.WARNING]],
                    "repeat_interval": "12h",
                },
                {"receiver": "blackhole", "matchers": ['severity=~"info|none"']},
            ],
        },
        "inhibit_rules": [
            {
                "source_matchers": [severity[Severity.CRITICAL]],
                "target_matchers": ['severity=~"warning|info"'],
                "equal": ["alertname", "model"],
            },
            {
                # An instance that cannot be scraped has no meaningful per-model signals.
                "source_matchers": [f'alertname="{SERVICE_DOWN}"'],
                "target_matchers": ['model=~".+"'],
                "equal": ["instance"],
            },
        ],
        "receivers": [
            {"name": "blackhole"},
            {"name": "deadmans-switch", **_webhook(values.deadmans_switch_url, False)},
            {
                "name": "service-webhook",
                **_webhook(
                    values.service_webhook_url,
                    True,
                    http_config={
                        "authorization": {
                            "type": "Bearer",
                            "credentials_file": values.service_webhook_credentials_file,
                        }
                    },
                ),
            },
            {"name": "pager", **_webhook(values.pager_url, True)},
            {"name": "tickets", **_webhook(values.ticket_url, True)},
        ],
    }


def render_alertmanager(values_path: Path = VALUES_PATH) -> str:
    document = config(load_values(values_path))
    return HEADER + yaml.safe_dump(document, sort_keys=False, width=4096)
