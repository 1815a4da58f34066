"""The exporters' metric families as data: the one definition the collectors build from.

`MetricDef` is the catalog's type for both halves (inference/telemetry/catalog.py holds the
service's families; it may import this module, never the other way round). Collectors create
their families with `MetricDef.family()`, so a name, help text or label set changes here or
nowhere, and docs/metrics.md is generated from the same entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from exporters.nvml_device import CLOCK_EVENT_REASONS, ECC_TYPES

MetricType = Literal["counter", "gauge", "histogram", "info"]


@dataclass(frozen=True)
class MetricDef:
    """One exported family. `info` is a gauge with value 1 whose labels carry static facts;
    `values` lists the fixed vocabulary of a label where the code has one."""

    name: str
    type: MetricType
    help: str
    unit: str = ""  # base unit the name ends in ("seconds", "bytes", ...); else what is counted
    labels: tuple[str, ...] = ()
    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    buckets: tuple[float, ...] = ()  # histogram upper bounds, +Inf implied
    exemplar: bool = False  # observations carry the request's trace id (OpenMetrics only)
    event_only: bool = False  # absent until the first event (no series can be created ahead)
    source: str = ""  # where the value comes from, for the reference page

    @property
    def exposed_type(self) -> str:
        """The TYPE the exposition says: an info family is a plain gauge there."""
        return "gauge" if self.type == "info" else self.type

    def family(self, value: float | None = None) -> GaugeMetricFamily | CounterMetricFamily:
        """A fresh family for a custom collector: labelled and empty, or (`value`) one
        unlabelled sample. Histograms are instruments (prometheus_client), never built here."""
        labels = list(self.labels) if value is None else None
        if self.type in ("gauge", "info"):
            return GaugeMetricFamily(self.name, self.help, value=value, labels=labels)
        if self.type == "counter":
            return CounterMetricFamily(self.name, self.help, value=value, labels=labels)
        raise TypeError(f"{self.name} is a {self.type}: no metric family for it")


DEVICE_LABELS: tuple[str, ...] = ("gpu", "uuid")
MIG_MODES: tuple[str, ...] = ("enabled", "disabled", "unsupported")
# The `name` of every MetricSource: the exporter's gpu and host, the service's queue too.
COLLECTORS: tuple[str, ...] = ("queue", "gpu", "host")


def _per_gpu(
    name: str,
    type_: MetricType,
    help_: str,
    *,
    unit: str,
    source: str,
    labels: tuple[str, ...] = (),
    values: Mapping[str, tuple[str, ...]] | None = None,
    event_only: bool = False,
) -> MetricDef:
    """A family with one series per GPU (NVML index and UUID), then `labels`."""
    return MetricDef(
        name, type_, help_, unit=unit, labels=(*DEVICE_LABELS, *labels), values=values or {},
        event_only=event_only, source=source,
    )  # fmt: skip


GPU_UP = MetricDef(
    "inferwatch_gpu_up", "gauge", "1 when NVML initialised and the last collection succeeded.",
    unit="boolean", source="nvmlInit and the last NVML pass",
)  # fmt: skip
GPU_INFO = _per_gpu(
    "inferwatch_gpu_info", "info", "Static facts about each GPU (value 1).",
    unit="", labels=("name", "driver_version", "pci_bus_id", "mig_mode"),
    values={"mig_mode": MIG_MODES},
    source="nvmlDeviceGetName, nvmlSystemGetDriverVersion, nvmlDeviceGetPciInfo, "
    "nvmlDeviceGetMigMode",
)  # fmt: skip
GPU_UTILIZATION = _per_gpu(
    "inferwatch_gpu_utilization_ratio", "gauge", "GPU busy fraction over the last sample period.",
    unit="ratio",
    source="nvmlDeviceGetUtilizationRates [DCGM_FI_DEV_GPU_UTIL]; not asked on a MIG-enabled GPU",
)  # fmt: skip
_MEMORY_SOURCE = "nvmlDeviceGetMemoryInfo [DCGM_FI_DEV_FB_{}]"
GPU_MEMORY_USED = _per_gpu(
    "inferwatch_gpu_memory_used_bytes", "gauge", "Framebuffer memory in use.",
    unit="bytes", source=_MEMORY_SOURCE.format("USED"),
)  # fmt: skip
GPU_MEMORY_FREE = _per_gpu(
    "inferwatch_gpu_memory_free_bytes", "gauge", "Framebuffer memory free.",
    unit="bytes", source=_MEMORY_SOURCE.format("FREE"),
)  # fmt: skip
GPU_MEMORY_TOTAL = _per_gpu(
    "inferwatch_gpu_memory_total_bytes", "gauge", "Framebuffer memory in all.",
    unit="bytes", source=_MEMORY_SOURCE.format("TOTAL"),
)  # fmt: skip
GPU_TEMPERATURE = _per_gpu(
    "inferwatch_gpu_temperature_celsius", "gauge", "GPU die temperature.",
    unit="celsius", source="nvmlDeviceGetTemperatureV [DCGM_FI_DEV_GPU_TEMP]",
)  # fmt: skip
GPU_POWER = _per_gpu(
    "inferwatch_gpu_power_watts", "gauge", "Power draw.",
    unit="watts", source="nvmlDeviceGetPowerUsage [DCGM_FI_DEV_POWER_USAGE]",
)  # fmt: skip
GPU_POWER_LIMIT = _per_gpu(
    "inferwatch_gpu_power_limit_watts", "gauge", "Enforced power limit.",
    unit="watts", source="nvmlDeviceGetEnforcedPowerLimit [DCGM_FI_DEV_ENFORCED_POWER_LIMIT]",
)  # fmt: skip
GPU_SM_CLOCK = _per_gpu(
    "inferwatch_gpu_sm_clock_hertz", "gauge", "Current SM clock.",
    unit="hertz", source="nvmlDeviceGetClockInfo(NVML_CLOCK_SM) [DCGM_FI_DEV_SM_CLOCK]",
)  # fmt: skip
GPU_ENERGY = _per_gpu(
    "inferwatch_gpu_energy_joules_total", "counter", "Energy consumed since the driver was loaded.",
    unit="joules",
    source="nvmlDeviceGetTotalEnergyConsumption [DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION]",
)  # fmt: skip
GPU_CLOCK_EVENT = _per_gpu(
    "inferwatch_gpu_clock_event_active", "gauge",
    "1 while the reason holds clocks down (throttling or idle), else 0.",
    unit="boolean", labels=("reason",), values={"reason": tuple(CLOCK_EVENT_REASONS)},
    source="nvmlDeviceGetCurrentClocksEventReasons [DCGM_FI_DEV_CLOCKS_EVENT_REASONS]",
)  # fmt: skip
GPU_ECC_ERRORS = _per_gpu(
    "inferwatch_gpu_ecc_errors_total", "counter",
    "Volatile ECC error counts (since the driver was loaded), by type.",
    unit="errors", labels=("type",), values={"type": tuple(ECC_TYPES)},
    source="nvmlDeviceGetTotalEccErrors(NVML_VOLATILE_ECC) "
    "[DCGM_FI_DEV_ECC_SBE_VOL_TOTAL, DCGM_FI_DEV_ECC_DBE_VOL_TOTAL]",
)  # fmt: skip
GPU_XID_ERRORS = _per_gpu(
    "inferwatch_gpu_xid_errors_total", "counter",
    "XID critical error events seen by the NVML event watcher.",
    unit="events", labels=("xid",), event_only=True,
    source="NVML event set, nvmlEventTypeXidCriticalError [DCGM_FI_DEV_XID_ERRORS]",
)  # fmt: skip

HOST_CPU_UTILIZATION = MetricDef(
    "inferwatch_host_cpu_utilization_ratio", "gauge",
    "Share of all CPU time spent busy since the previous collection.",
    unit="ratio", source="psutil.cpu_times",
)  # fmt: skip
HOST_MEMORY_USED = MetricDef(
    "inferwatch_host_memory_used_bytes", "gauge",
    "Memory in use: total minus available (reclaimable page cache counts as free).",
    unit="bytes", source="psutil.virtual_memory",
)  # fmt: skip
HOST_MEMORY_TOTAL = MetricDef(
    "inferwatch_host_memory_total_bytes", "gauge", "Physical memory.",
    unit="bytes", source="psutil.virtual_memory",
)  # fmt: skip

COLLECT_DURATION = MetricDef(
    "inferwatch_exporter_collect_duration_seconds", "gauge",
    "Time spent in the last collection, by collector.",
    unit="seconds", labels=("collector",), values={"collector": COLLECTORS},
)  # fmt: skip
COLLECT_ERRORS = MetricDef(
    "inferwatch_exporter_collect_errors_total", "counter", "Failed collections, by collector.",
    unit="errors", labels=("collector",), values={"collector": COLLECTORS},
)  # fmt: skip

GPU_FAMILIES: tuple[MetricDef, ...] = (
    GPU_UP, GPU_INFO, GPU_UTILIZATION, GPU_MEMORY_USED, GPU_MEMORY_FREE, GPU_MEMORY_TOTAL,
    GPU_TEMPERATURE, GPU_POWER, GPU_POWER_LIMIT, GPU_SM_CLOCK, GPU_ENERGY, GPU_CLOCK_EVENT,
    GPU_ECC_ERRORS, GPU_XID_ERRORS,
)  # fmt: skip
HOST_FAMILIES: tuple[MetricDef, ...] = (HOST_CPU_UTILIZATION, HOST_MEMORY_USED, HOST_MEMORY_TOTAL)
COLLECTOR_FAMILIES: tuple[MetricDef, ...] = (COLLECT_DURATION, COLLECT_ERRORS)
EXPORTER_FAMILIES: tuple[MetricDef, ...] = (*GPU_FAMILIES, *HOST_FAMILIES, *COLLECTOR_FAMILIES)
