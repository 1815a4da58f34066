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

from prometheus_client.core import Metric

from exporters import catalog
from exporters.catalog import MetricDef
from exporters.nvml_cache import SharedPass
from exporters.nvml_device import DeviceReading, GpuReading, read_gpus
from exporters.nvml_session import NvmlSession
from exporters.xid import XidWatcher

log = logging.getLogger(__name__)


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
            catalog.GPU_UP.family(1),
            *_device_families(reading),
            *self._xid_families(),
        ]

    def on_error(self, exc: BaseException) -> Iterable[Metric]:
        # XID counters stay visible: the XID that precedes a lost GPU matters most.
        return [catalog.GPU_UP.family(0), *self._xid_families()]

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
        family = catalog.GPU_XID_ERRORS.family()
        for labels, count in sorted(counts.items()):
            family.add_metric(list(labels), count)
        return [family]


# The plain per-device gauges, with the DeviceReading attribute each one reports.
_GAUGES: tuple[tuple[MetricDef, str], ...] = (
    (catalog.GPU_UTILIZATION, "utilization_ratio"),
    (catalog.GPU_MEMORY_USED, "memory_used_bytes"),
    (catalog.GPU_MEMORY_FREE, "memory_free_bytes"),
    (catalog.GPU_MEMORY_TOTAL, "memory_total_bytes"),
    (catalog.GPU_TEMPERATURE, "temperature_celsius"),
    (catalog.GPU_POWER, "power_watts"),
    (catalog.GPU_POWER_LIMIT, "power_limit_watts"),
    (catalog.GPU_SM_CLOCK, "sm_clock_hertz"),
)


def _device_families(reading: GpuReading) -> list[Metric]:
    devices = reading.devices
    families: list[Metric] = []
    info = catalog.GPU_INFO.family()
    for d in devices:
        info.add_metric([*_ids(d), d.name, reading.driver_version, d.pci_bus_id, d.mig_mode], 1)
    families.append(info)
    for definition, attr in _GAUGES:
        family = definition.family()
        for d in devices:
            value = getattr(d, attr)
            if value is not None:
                family.add_metric(_ids(d), value)
        families.append(family)
    energy = catalog.GPU_ENERGY.family()
    for d in devices:
        if d.energy_joules is not None:
            energy.add_metric(_ids(d), d.energy_joules)
    clock_events = catalog.GPU_CLOCK_EVENT.family()
    for d in devices:
        for reason, active in d.clock_events.items():
            clock_events.add_metric([*_ids(d), reason], 1 if active else 0)
    ecc = catalog.GPU_ECC_ERRORS.family()
    for d in devices:
        for type_, count in d.ecc_errors.items():
            ecc.add_metric([*_ids(d), type_], count)
    families += [energy, clock_events, ecc]
    # A family no device can report is left out entirely rather than exposed empty.
    return [f for f in families if f.samples]


def _ids(d: DeviceReading) -> list[str]:
    return [str(d.index), d.uuid]
