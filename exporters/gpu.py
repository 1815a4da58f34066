"""GPU metrics from NVML (nvidia-ml-py) as a MetricSource for `CollectorGroup`.

Unlike dcgm-exporter (HTTP 500 on a failed collection) or exporters that exit without a GPU, a
failing NVML only turns `inferwatch_gpu_up` to 0: the group counts the error and every other
source in the same scrape is untouched. Nothing touches NVML until the first collection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporters.nvml_cache import SharedPass
from exporters.nvml_device import DeviceReading, GpuReading, read_gpus
from exporters.nvml_session import NvmlSession
from exporters.xid import XidWatcher

log = logging.getLogger(__name__)

DEVICE_LABELS = ["gpu", "uuid"]


def _import_pynvml() -> Any:
    import pynvml  # nvidia-ml-py; imported lazily so importing this module never loads NVML

    return pynvml


def nvml_available(nvml: Any = None) -> bool:
    """True only if NVML initialises and reports at least one device; never raises."""
    try:
        nvml = nvml if nvml is not None else _import_pynvml()
        nvml.nvmlInit()
    except Exception:  # noqa: BLE001 - "no" is the answer for every failure
        return False
    try:
        return int(nvml.nvmlDeviceGetCount()) >= 1
    except Exception:  # noqa: BLE001
        return False
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            log.debug("nvmlShutdown failed after the availability probe", exc_info=True)


class GpuSource:
    """All GPUs of this host; one NVML pass per `cache_seconds` however many scrapers ask, and a
    scrape never waits more than `timeout_seconds` for NVML (see exporters.nvml_cache)."""

    name = "gpu"

    def __init__(
        self,
        nvml: Any = None,
        cache_seconds: float = 1.0,
        watch_xid: bool = True,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._nvml = nvml if nvml is not None else _import_pynvml()
        self._session = NvmlSession(self._nvml)
        self._passes = SharedPass(self._nvml_pass, cache_seconds, timeout_seconds, clock)
        self._xid = XidWatcher(self._nvml) if watch_xid else None

    def collect(self) -> Iterable[Metric]:
        reading = self._passes.get()
        return [
            _gauge("inferwatch_gpu_up", _UP_HELP, 1),
            *_device_families(reading),
            *self._xid_families(),
        ]

    def on_error(self, exc: BaseException) -> Iterable[Metric]:
        # XID counters stay visible: the XID that precedes a lost GPU matters most.
        return [_gauge("inferwatch_gpu_up", _UP_HELP, 0), *self._xid_families()]

    def close(self) -> None:
        """Stops the XID watcher and releases this source's NVML reference."""
        if self._xid is not None:
            self._xid.close()
        self._session.close()

    def _nvml_pass(self) -> GpuReading | Exception:
        """Runs on the pass thread; the error is returned so that SharedPass caches it."""
        try:
            self._session.ensure()
            reading = read_gpus(self._nvml)
        except Exception as exc:  # noqa: BLE001 - returned, raised by the caller, counted by group
            if self._session.note_failure(exc) and self._xid is not None:
                # NVML only re-initialises once every reference is gone, the watcher's too.
                self._xid.stop()
            return exc
        if self._xid is not None and reading.devices:
            self._xid.start()
        return reading

    def _xid_families(self) -> list[Metric]:
        if self._xid is None:
            return []
        counts = self._xid.counts()
        if not counts:
            return []
        family = CounterMetricFamily(
            "inferwatch_gpu_xid_errors_total",
            "XID critical error events seen by the NVML event watcher.",
            labels=[*DEVICE_LABELS, "xid"],
        )
        for labels, count in sorted(counts.items()):
            family.add_metric(list(labels), count)
        return [family]


_UP_HELP = "1 when NVML initialised and the last collection succeeded."

# (family name, help, DeviceReading attribute) for the plain per-device gauges.
_GAUGES: list[tuple[str, str, str]] = [
    (
        "inferwatch_gpu_utilization_ratio",
        "GPU busy fraction over the last sample period.",
        "utilization_ratio",
    ),
    ("inferwatch_gpu_memory_used_bytes", "Framebuffer memory in use.", "memory_used_bytes"),
    ("inferwatch_gpu_memory_free_bytes", "Framebuffer memory free.", "memory_free_bytes"),
    ("inferwatch_gpu_memory_total_bytes", "Framebuffer memory in all.", "memory_total_bytes"),
    ("inferwatch_gpu_temperature_celsius", "GPU die temperature.", "temperature_celsius"),
    ("inferwatch_gpu_power_watts", "Power draw.", "power_watts"),
    ("inferwatch_gpu_power_limit_watts", "Enforced power limit.", "power_limit_watts"),
    ("inferwatch_gpu_sm_clock_hertz", "Current SM clock.", "sm_clock_hertz"),
]


def _device_families(reading: GpuReading) -> list[Metric]:
    devices = reading.devices
    families: list[Metric] = []
    info = GaugeMetricFamily(
        "inferwatch_gpu_info",
        "Static facts about each GPU (value 1).",
        labels=[*DEVICE_LABELS, "name", "driver_version", "pci_bus_id", "mig_mode"],
    )
    for d in devices:
        info.add_metric([*_ids(d), d.name, reading.driver_version, d.pci_bus_id, d.mig_mode], 1)
    families.append(info)
    for name, help_, attr in _GAUGES:
        family = GaugeMetricFamily(name, help_, labels=DEVICE_LABELS)
        for d in devices:
            value = getattr(d, attr)
            if value is not None:
                family.add_metric(_ids(d), value)
        families.append(family)
    energy = CounterMetricFamily(
        "inferwatch_gpu_energy_joules_total",
        "Energy consumed since the driver was loaded.",
        labels=DEVICE_LABELS,
    )
    for d in devices:
        if d.energy_joules is not None:
            energy.add_metric(_ids(d), d.energy_joules)
    clock_events = GaugeMetricFamily(
        "inferwatch_gpu_clock_event_active",
        "1 while the reason holds clocks down (throttling or idle), else 0.",
        labels=[*DEVICE_LABELS, "reason"],
    )
    for d in devices:
        for reason, active in d.clock_events.items():
            clock_events.add_metric([*_ids(d), reason], 1 if active else 0)
    ecc = CounterMetricFamily(
        "inferwatch_gpu_ecc_errors_total",
        "Volatile ECC error counts (since the driver was loaded), by type.",
        labels=[*DEVICE_LABELS, "type"],
    )
    for d in devices:
        for type_, count in d.ecc_errors.items():
            ecc.add_metric([*_ids(d), type_], count)
    families += [energy, clock_events, ecc]
    # A family no device can report is left out entirely rather than exposed empty.
    return [f for f in families if f.samples]


def _ids(d: DeviceReading) -> list[str]:
    return [str(d.index), d.uuid]


def _gauge(name: str, help_: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_, value=value)
