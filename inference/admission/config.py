"""Admission's settings (`inferwatch serve` flags and INFERWATCH_* variables)."""

from __future__ import annotations

from dataclasses import dataclass, field

MODES = ("adaptive", "fifo", "off")


@dataclass(frozen=True)
class AdmissionConfig:
    admission_mode: str = field(
        default="adaptive",
        metadata={
            "help": "adaptive: degradation levels, adaptive limits, breaker, deadlines; "
            "fifo: one first-come-first-served queue (a baseline); off: the engine alone",
            "choices": MODES,
        },
    )
    admin_token_file: str | None = field(
        default=None,
        metadata={
            "help": "file holding the bearer token of /admin/* (the Alertmanager webhook's "
            "credentials_file); without it the admin endpoints answer 404"
        },
    )
    api_keys_file: str | None = field(
        default=None,
        metadata={
            "help": "YAML/JSON file of API keys (key, tenant, max_priority, rate, burst); "
            "with it every /v1 request needs a valid key"
        },
    )
    degradation_levels_file: str | None = field(
        default=None,
        metadata={"help": "JSON file replacing the degradation ladder (docs/degradation.md)"},
    )
    degradation_dwell_seconds: float = field(
        default=5.0, metadata={"help": "how long a higher demand must hold before a step up"}
    )
    degradation_cooldown_seconds: float = field(
        default=60.0, metadata={"help": "how long demand must stay lower before a step down"}
    )
    local_evaluation_seconds: float = field(
        default=1.0,
        metadata={"help": "period of the in-process rule evaluation (0: off)"},
    )
    alert_lease_seconds: float = field(
        default=660.0,
        metadata={
            "help": "a firing alert not notified again within this long has stopped "
            "(the webhook route repeats every 5 m)"
        },
    )
    watchdog_timeout_seconds: float = field(
        default=660.0,
        metadata={"help": "the Watchdog counts as silent when not heard for this long"},
    )
    concurrency_tolerance: float = field(
        default=1.5,
        metadata={"help": "latency rise the adaptive limit tolerates (Gradient2; 1.5: half again)"},
    )
    max_inflight_tokens: int | None = field(
        default=None,
        metadata={
            "help": "ceiling of the adaptive limit in KV tokens (default: twice the KV cache)"
        },
    )
    breaker_window: int = field(
        default=20, metadata={"help": "circuit breaker: engine outcomes in its window"}
    )
    breaker_min_calls: int = field(
        default=10, metadata={"help": "circuit breaker: outcomes needed before it may open"}
    )
    breaker_failure_ratio: float = field(
        default=0.5, metadata={"help": "circuit breaker: failed share that opens it"}
    )
    breaker_open_seconds: float = field(
        default=5.0, metadata={"help": "circuit breaker: how long it stays open"}
    )

    def __post_init__(self) -> None:
        if self.admission_mode not in MODES:
            raise ValueError(f"admission_mode must be one of {', '.join(MODES)}")
        if self.degradation_cooldown_seconds < self.degradation_dwell_seconds:
            raise ValueError("degradation_cooldown_seconds must be >= the dwell")
        if self.concurrency_tolerance < 1:
            raise ValueError("concurrency_tolerance must be >= 1")
        if self.max_inflight_tokens is not None and self.max_inflight_tokens < 1:
            raise ValueError("max_inflight_tokens must be >= 1")
        for name in ("local_evaluation_seconds", "alert_lease_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
