"""One NVML pass over the devices, as plain values in base units.

Reading into dataclasses (instead of building metric families straight away) lets the cache hand
one pass to every concurrent scraper, and keeps NVML's units (mW, mJ, MHz, percent) in one place.
The current nvidia-ml-py 13 calls are used; a deprecated equivalent only where the driver lacks
the current one (see `field`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Label value -> pynvml constant name. The bit values come from the nvml module in use.
CLOCK_EVENT_REASONS: dict[str, str] = {
    "gpu_idle": "nvmlClocksEventReasonGpuIdle",
    "applications_clocks_setting": "nvmlClocksEventReasonApplicationsClocksSetting",
    "sw_power_cap": "nvmlClocksEventReasonSwPowerCap",
    "hw_slowdown": "nvmlClocksEventReasonHwSlowdown",
    "sync_boost": "nvmlClocksEventReasonSyncBoost",
    "sw_thermal_slowdown": "nvmlClocksEventReasonSwThermalSlowdown",
    "hw_thermal_slowdown": "nvmlClocksEventReasonHwThermalSlowdown",
    "hw_power_brake_slowdown": "nvmlClocksEventReasonHwPowerBrakeSlowdown",
    "display_clock_setting": "nvmlClocksEventReasonDisplayClockSetting",
}

ECC_TYPES: dict[str, str] = {
    "corrected": "NVML_MEMORY_ERROR_TYPE_CORRECTED",
    "uncorrected": "NVML_MEMORY_ERROR_TYPE_UNCORRECTED",
}


@dataclass(frozen=True)
class DeviceReading:
    """What one device reported; None means the device cannot measure it (left out, not 0)."""

    index: int
    uuid: str
    name: str
    pci_bus_id: str
    mig_mode: str  # enabled | disabled | unsupported
    utilization_ratio: float | None
    memory_used_bytes: int | None
    memory_free_bytes: int | None
    memory_total_bytes: int | None
    temperature_celsius: float | None
    power_watts: float | None
    power_limit_watts: float | None
    energy_joules: float | None
    sm_clock_hertz: float | None
    clock_events: dict[str, bool]  # empty when unsupported
    ecc_errors: dict[str, int]  # volatile totals by type; empty when unsupported


@dataclass(frozen=True)
class GpuReading:
    driver_version: str
    devices: tuple[DeviceReading, ...]


def field(nvml: Any, *calls: tuple[str, tuple[Any, ...]]) -> Any | None:
    """The first of `calls` (name, args) that the binding and the driver both have; None when
    the device cannot report the field (NotSupported), so it is left out rather than shown as 0.

    Later calls are the older equivalents (deprecated, same meaning), tried only where the
    current call is missing: on a driver released before the current call (FunctionNotFound)
    the field would otherwise vanish, although the driver can report it.
    """
    for name, args in calls:
        function = getattr(nvml, name, None)
        if function is None:
            continue  # nvidia-ml-py older than the call
        try:
            return function(*args)
        except nvml.NVMLError_FunctionNotFound:
            continue  # driver older than the call
        except nvml.NVMLError_NotSupported:
            return None
    return None


def read_gpus(nvml: Any) -> GpuReading:
    """Reads every device; any error other than "unsupported" propagates to fail the pass."""
    count = nvml.nvmlDeviceGetCount()
    devices = tuple(read_device(nvml, i) for i in range(count))
    return GpuReading(driver_version=_text(nvml.nvmlSystemGetDriverVersion()), devices=devices)


def read_device(nvml: Any, index: int) -> DeviceReading:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    mig_mode = _mig_mode(nvml, field(nvml, ("nvmlDeviceGetMigMode", (handle,))))
    # NVML cannot measure utilisation of a MIG-partitioned GPU: do not even ask.
    util = None
    if mig_mode != "enabled":
        util = field(nvml, ("nvmlDeviceGetUtilizationRates", (handle,)))
    memory = field(
        nvml,
        ("nvmlDeviceGetMemoryInfo", (handle, nvml.nvmlMemory_v2)),
        ("nvmlDeviceGetMemoryInfo", (handle,)),
    )
    sensor = nvml.NVML_TEMPERATURE_GPU
    temperature = field(
        nvml,
        ("nvmlDeviceGetTemperatureV", (handle, sensor)),
        ("nvmlDeviceGetTemperature", (handle, sensor)),
    )
    power_mw = field(nvml, ("nvmlDeviceGetPowerUsage", (handle,)))
    limit_mw = field(nvml, ("nvmlDeviceGetEnforcedPowerLimit", (handle,)))
    energy_mj = field(nvml, ("nvmlDeviceGetTotalEnergyConsumption", (handle,)))
    sm_mhz = field(nvml, ("nvmlDeviceGetClockInfo", (handle, nvml.NVML_CLOCK_SM)))
    reasons = field(
        nvml,
        ("nvmlDeviceGetCurrentClocksEventReasons", (handle,)),
        ("nvmlDeviceGetCurrentClocksThrottleReasons", (handle,)),
    )
    ecc: dict[str, int] = {}
    for label, const in ECC_TYPES.items():
        args = (handle, getattr(nvml, const), nvml.NVML_VOLATILE_ECC)
        count = field(nvml, ("nvmlDeviceGetTotalEccErrors", args))
        if count is not None:
            ecc[label] = int(count)
    return DeviceReading(
        index=index,
        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
        name=_text(nvml.nvmlDeviceGetName(handle)),
        pci_bus_id=_text(nvml.nvmlDeviceGetPciInfo(handle).busId),
        mig_mode=mig_mode,
        utilization_ratio=None if util is None else util.gpu / 100.0,
        memory_used_bytes=None if memory is None else int(memory.used),
        memory_free_bytes=None if memory is None else int(memory.free),
        memory_total_bytes=None if memory is None else int(memory.total),
        temperature_celsius=None if temperature is None else float(temperature),
        power_watts=None if power_mw is None else power_mw / 1000.0,
        power_limit_watts=None if limit_mw is None else limit_mw / 1000.0,
        energy_joules=None if energy_mj is None else energy_mj / 1000.0,
        sm_clock_hertz=None if sm_mhz is None else sm_mhz * 1e6,
        clock_events={}
        if reasons is None
        else {
            label: bool(reasons & getattr(nvml, const))
            for label, const in CLOCK_EVENT_REASONS.items()
        },
        ecc_errors=ecc,
    )


def _mig_mode(nvml: Any, modes: list[int] | None) -> str:
    if modes is None:
        return "unsupported"
    return "enabled" if modes[0] == nvml.NVML_DEVICE_MIG_ENABLE else "disabled"


def _text(value: str | bytes) -> str:
    """pynvml decodes function results but leaves struct char arrays (busId) as bytes."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
