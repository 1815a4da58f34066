"""Admission's own parts put together from its config: the gate around the backend, the
controller and its triggers, the key ring, the admin token. `inference/service.py` calls
`build_admission` and wires the result to the metrics and the HTTP layer."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerts.samples import Source
from alerts.spec import SPEC, Spec
from inference.admission.breaker import CircuitBreaker
from inference.admission.concurrency import AdaptiveLimit
from inference.admission.config import AdmissionConfig
from inference.admission.controller import ALERTMANAGER, Controller
from inference.admission.fifo import FifoGate
from inference.admission.gate import AdmissionGate
from inference.admission.keys import KeyRing
from inference.admission.levels import DEFAULT_LADDER, load_ladder
from inference.admission.local_trigger import LocalTrigger
from inference.admission.notifications import AlertmanagerTrigger
from inference.admission.retry_after import RetryAdvisor
from inference.backend import Backend

MIN_TOKEN_CHARS = 16
# Without a KV cache to size it by (a proxy backend), the limit's ceiling in KV tokens.
FALLBACK_MAX_INFLIGHT_REQUESTS = 64
# The limit's ceiling: a cache's worth running and one more waiting. At rest admission refuses
# nothing the engine would have queued; latency brings the limit down from there.
CEILING_CACHES = 2


@dataclass
class Admission:
    config: AdmissionConfig
    backend: Backend  # what the API calls: the gate, the FIFO baseline, or the engine itself
    admin_token: str | None = None
    keys: KeyRing | None = None
    controller: Controller | None = None
    gate: AdmissionGate | None = None
    alertmanager: AlertmanagerTrigger | None = None
    local: LocalTrigger | None = None

    def start(self) -> None:
        if self.local is not None and self.config.local_evaluation_seconds > 0:
            self.local.start(self.config.local_evaluation_seconds)

    def stop(self) -> None:
        if self.local is not None:
            self.local.stop()

    def snapshot(self) -> dict[str, Any]:
        """`GET /admin/degradation`: the controller's view plus the gate's and the webhook's."""
        out: dict[str, Any] = {"mode": self.config.admission_mode}
        if self.controller is not None:
            out.update(self.controller.snapshot())
        if self.gate is not None:
            out["admission"] = self.gate.snapshot()
        if self.alertmanager is not None:
            out["alertmanager"] = self.alertmanager.snapshot()
        return out


def read_token(path: str) -> str:
    """The admin bearer token from its file; a configured but unusable file stops the start
    (a typo must not leave the endpoints open, or silently off)."""
    token = Path(path).read_text().strip()
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise ValueError(
            f"{path}: the admin token must be one word of at least {MIN_TOKEN_CHARS} characters"
        )
    return token


def build_admission(
    config: AdmissionConfig,
    backend: Backend,
    source: Source,
    *,
    spec: Spec = SPEC,
    clock: Callable[[], float] = time.monotonic,
) -> Admission:
    """`source` is what the local trigger samples: the service's own registry."""
    token = read_token(config.admin_token_file) if config.admin_token_file else None
    keys = KeyRing.load(config.api_keys_file, clock) if config.api_keys_file else None
    if config.admission_mode == "off":
        return Admission(config, backend, token, keys)
    if config.admission_mode == "fifo":
        return Admission(config, FifoGate(backend), token, keys)
    ladder = load_ladder(config.degradation_levels_file) if config.degradation_levels_file else (
        DEFAULT_LADDER
    )  # fmt: skip
    controller = Controller(
        ladder,
        dwell_s=config.degradation_dwell_seconds,
        cooldown_s=config.degradation_cooldown_seconds,
        clock=clock,
    )
    capacity = kv_tokens(backend) or FALLBACK_MAX_INFLIGHT_REQUESTS * backend.max_model_len
    ceiling = float(config.max_inflight_tokens or CEILING_CACHES * capacity)
    limits = {
        priority: AdaptiveLimit(
            initial=ceiling * service.share,  # optimistic, as Gradient2 starts
            minimum=max(1.0, ceiling * service.min_share),
            maximum=ceiling * service.share,
            tolerance=config.concurrency_tolerance,
            clock=clock,
        )
        for priority, service in ladder.service.items()
    }
    breaker = CircuitBreaker(
        window=config.breaker_window,
        min_calls=config.breaker_min_calls,
        failure_ratio=config.breaker_failure_ratio,
        open_s=config.breaker_open_seconds,
        clock=clock,
    )
    gate = AdmissionGate(
        backend,
        ladder=ladder,
        level=lambda: controller.level,
        limits=limits,
        breaker=breaker,
        advisor=RetryAdvisor(clock),
        relief=controller.seconds_until_relief,
        clock=clock,
    )
    alertmanager = AlertmanagerTrigger(
        ladder.action_levels,
        lease_s=config.alert_lease_seconds,
        watchdog_timeout_s=config.watchdog_timeout_seconds,
        clock=clock,
    )
    local = LocalTrigger(
        controller, spec, source, clock=clock, others=[(ALERTMANAGER, alertmanager.demands)]
    )
    return Admission(config, gate, token, keys, controller, gate, alertmanager, local)


def kv_tokens(backend: Backend) -> int | None:
    """The KV cache's size in tokens, what the engine holds at once (None: no KV cache)."""
    kv = backend.stats().kv
    return None if kv is None else kv.blocks_total * kv.block_size
