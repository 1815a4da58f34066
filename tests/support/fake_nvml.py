"""TEST DOUBLE for pynvml (nvidia-ml-py): no GPU and no NVML library exist on the test machines.

It mimics only the API surface the exporters use, with pynvml's signatures. Error classes and
constants are the REAL ones from the installed pynvml, so the exporters' `except` clauses and bit
tests run their real code paths. Deprecated calls fail the test unless the driver is made to
lack the current call (`missing`), the one case where the exporter may fall back to them.

NVML behaviour modelled, because the exporters rely on it:
- init/shutdown are reference counted; state is only refreshed when the count goes 0 -> 1;
- after a GPU is lost, every call on that NVML state fails with GpuIsLost, even once the
  hardware is back, until NVML is re-initialised (count back to 0, then init).
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml

NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED


@dataclass
class FakeGpu:
    """One device's readings in NVML units (percent, mW, mJ, MHz)."""

    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    pci_bus_id: bytes = b"00000000:17:00.0"  # a char array in pynvml's struct: bytes
    mig_mode: int = pynvml.NVML_DEVICE_MIG_DISABLE
    util_percent: int = 50
    memory_total: int = 80 * 2**30
    memory_used: int = 20 * 2**30
    memory_reserved: int = 512 * 2**20
    temperature: int = 45
    power_mw: int = 250_000
    power_limit_mw: int = 700_000
    energy_mj: int = 123_456_789
    sm_mhz: int = 1980
    clock_reasons: int = 0
    ecc_corrected: int = 3
    ecc_uncorrected: int = 0
    unsupported: set[str] = field(default_factory=set)  # NVML function names: NotSupported


@dataclass(frozen=True)
class _Handle:
    index: int


class _EventSet:
    def __init__(self) -> None:
        self.events: queue.Queue[SimpleNamespace] = queue.Queue()
        self.handles: set[_Handle] = set()


class FakeNvml:
    """Stands in for the `pynvml` module (pass it as `nvml=`)."""

    def __init__(self, gpus: list[FakeGpu], driver_version: str = "570.124.06"):
        for name in dir(pynvml):
            if name.startswith(("NVML_", "NVMLError", "nvmlClocksEventReason", "nvmlEventType")):
                setattr(self, name, getattr(pynvml, name))
        self.nvmlMemory_v2 = pynvml.nvmlMemory_v2
        self.nvmlTemperature_v1 = pynvml.nvmlTemperature_v1

        self.gpus = gpus
        self.driver_version = driver_version
        self.calls: Counter[str] = Counter()
        self.fail: dict[str, int] = {}  # function name -> NVML error code raised on every call
        self.missing: set[str] = set()  # C functions an older driver lacks: FunctionNotFound
        self.hang: dict[str, threading.Event] = {}  # function name -> blocks until the event is set
        self._lock = threading.Lock()
        self._refcount = 0
        self._generation = 0
        self._broken_generation = -1
        self._hardware_ok = True
        self.event_sets: list[_EventSet] = []

    # -- test controls -------------------------------------------------------------------------

    def lose_gpu(self) -> None:
        """The GPU falls off the bus: the current NVML state is broken for good."""
        with self._lock:
            self._hardware_ok = False
            self._broken_generation = self._generation

    def recover_gpu(self) -> None:
        """The hardware is back; the old NVML state stays broken (re-init needed)."""
        with self._lock:
            self._hardware_ok = True

    def emit_xid(self, index: int, xid: int) -> int:
        """Delivers an XID event to every event set the device is registered with."""
        event = SimpleNamespace(
            device=_Handle(index),
            eventType=pynvml.nvmlEventTypeXidCriticalError,
            eventData=xid,
            gpuInstanceId=0xFFFFFFFF,
            computeInstanceId=0xFFFFFFFF,
        )
        delivered = 0
        with self._lock:
            for event_set in self.event_sets:
                if _Handle(index) in event_set.handles:
                    event_set.events.put(event)
                    delivered += 1
        return delivered

    @property
    def refcount(self) -> int:
        return self._refcount

    # -- pynvml API ----------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self._enter("nvmlInit", needs_init=False)
        with self._lock:
            self._refcount += 1
            if self._refcount == 1:
                self._generation += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown", needs_init=False)
        with self._lock:
            if self._refcount == 0:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
            self._refcount -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(index)

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:
        return self._gpu("nvmlDeviceGetUUID", handle).uuid

    def nvmlDeviceGetName(self, handle: _Handle) -> str:
        return self._gpu("nvmlDeviceGetName", handle).name

    def nvmlDeviceGetPciInfo(self, handle: _Handle) -> SimpleNamespace:
        return SimpleNamespace(busId=self._gpu("nvmlDeviceGetPciInfo", handle).pci_bus_id)

    def nvmlDeviceGetMigMode(self, device: _Handle) -> list[int]:
        gpu = self._gpu("nvmlDeviceGetMigMode", device)
        return [gpu.mig_mode, gpu.mig_mode]

    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> SimpleNamespace:
        gpu = self._gpu("nvmlDeviceGetUtilizationRates", handle)
        if gpu.mig_mode == pynvml.NVML_DEVICE_MIG_ENABLE:
            raise pynvml.NVMLError(NOT_SUPPORTED)
        return SimpleNamespace(gpu=gpu.util_percent, memory=gpu.util_percent // 2)

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle, version: int | None = None) -> Any:
        if version is None:
            self._deprecated("nvmlDeviceGetMemoryInfo_v2")
        elif version != pynvml.nvmlMemory_v2:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        name = "nvmlDeviceGetMemoryInfo" if version is None else "nvmlDeviceGetMemoryInfo_v2"
        gpu = self._gpu(name, handle)
        reserved = 0 if version is None else gpu.memory_reserved  # v1 counts it as used
        return SimpleNamespace(
            total=gpu.memory_total,
            free=gpu.memory_total - gpu.memory_used - gpu.memory_reserved,
            used=gpu.memory_used + gpu.memory_reserved - reserved,
            **({} if version is None else {"version": version, "reserved": reserved}),
        )

    def nvmlDeviceGetTemperatureV(
        self, handle: _Handle, sensor: int, version: int = pynvml.nvmlTemperature_v1
    ) -> int:
        gpu = self._gpu("nvmlDeviceGetTemperatureV", handle)
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.temperature

    def nvmlDeviceGetTemperature(self, handle: _Handle, sensor: int) -> int:
        self._deprecated("nvmlDeviceGetTemperatureV")
        return self._gpu("nvmlDeviceGetTemperature", handle).temperature

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        return self._gpu("nvmlDeviceGetPowerUsage", handle).power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: _Handle) -> int:
        return self._gpu("nvmlDeviceGetEnforcedPowerLimit", handle).power_limit_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:
        return self._gpu("nvmlDeviceGetTotalEnergyConsumption", handle).energy_mj

    def nvmlDeviceGetClockInfo(self, handle: _Handle, type: int) -> int:  # noqa: A002 - pynvml
        gpu = self._gpu("nvmlDeviceGetClockInfo", handle)
        if type != pynvml.NVML_CLOCK_SM:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.sm_mhz

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: _Handle) -> int:
        return self._gpu("nvmlDeviceGetCurrentClocksEventReasons", handle).clock_reasons

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: _Handle) -> int:
        self._deprecated("nvmlDeviceGetCurrentClocksEventReasons")
        return self._gpu("nvmlDeviceGetCurrentClocksThrottleReasons", handle).clock_reasons

    def nvmlDeviceGetTotalEccErrors(self, handle: _Handle, errorType: int, counterType: int) -> int:  # noqa: N803
        gpu = self._gpu("nvmlDeviceGetTotalEccErrors", handle)
        if counterType != pynvml.NVML_VOLATILE_ECC:
            raise AssertionError("fake NVML: the exporter reports volatile ECC counts")
        if errorType == pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED:
            return gpu.ecc_corrected
        return gpu.ecc_uncorrected

    def nvmlEventSetCreate(self) -> _EventSet:
        self._enter("nvmlEventSetCreate")
        event_set = _EventSet()
        with self._lock:
            self.event_sets.append(event_set)
        return event_set

    def nvmlDeviceRegisterEvents(
        self, handle: _Handle, eventTypes: int, eventSet: _EventSet
    ) -> None:  # noqa: N803
        self._gpu("nvmlDeviceRegisterEvents", handle)
        if eventTypes != pynvml.nvmlEventTypeXidCriticalError:
            raise AssertionError("fake NVML: only XID events are expected")
        with self._lock:
            eventSet.handles.add(handle)

    def nvmlEventSetWait_v2(self, eventSet: _EventSet, timeoutms: int) -> SimpleNamespace:  # noqa: N803
        self._enter("nvmlEventSetWait_v2")
        try:
            return eventSet.events.get(timeout=timeoutms / 1000)
        except queue.Empty:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_TIMEOUT) from None

    def nvmlEventSetFree(self, eventSet: _EventSet) -> None:  # noqa: N803
        self.calls["nvmlEventSetFree"] += 1
        with self._lock:
            if eventSet in self.event_sets:
                self.event_sets.remove(eventSet)

    # -- internals -----------------------------------------------------------------------------

    def _deprecated(self, replacement: str) -> None:
        if replacement not in self.missing:
            raise AssertionError(f"deprecated NVML call used although {replacement} exists")

    def _enter(self, name: str, needs_init: bool = True) -> None:
        with self._lock:
            self.calls[name] += 1
        if name in self.hang:
            assert self.hang[name].wait(30), f"fake NVML: {name} hung for 30 s; release it"
        with self._lock:
            code = self.fail.get(name)
            if name in self.missing:
                code = pynvml.NVML_ERROR_FUNCTION_NOT_FOUND
            if code is None and needs_init:
                if self._refcount == 0:
                    code = pynvml.NVML_ERROR_UNINITIALIZED
                elif not self._hardware_ok or self._generation <= self._broken_generation:
                    code = pynvml.NVML_ERROR_GPU_IS_LOST
        if code is not None:
            raise pynvml.NVMLError(code)

    def _gpu(self, name: str, handle: _Handle) -> FakeGpu:
        self._enter(name)
        gpu = self.gpus[handle.index]
        if name in gpu.unsupported:
            raise pynvml.NVMLError(NOT_SUPPORTED)
        return gpu


def two_gpus() -> FakeNvml:
    """GPU 0 supports everything; GPU 1 (an older board) has no power, energy or ECC."""
    return FakeNvml(
        [
            FakeGpu(uuid="GPU-0a1b2c3d-0000-0000-0000-000000000000"),
            FakeGpu(
                uuid="GPU-0a1b2c3d-1111-1111-1111-111111111111",
                name="NVIDIA A10",
                pci_bus_id=b"00000000:65:00.0",
                util_percent=7,
                memory_total=24 * 2**30,
                memory_used=1 * 2**30,
                temperature=61,
                sm_mhz=1695,
                clock_reasons=0x1 | 0x20,  # gpu_idle + sw_thermal_slowdown
                unsupported={
                    "nvmlDeviceGetPowerUsage",
                    "nvmlDeviceGetEnforcedPowerLimit",
                    "nvmlDeviceGetTotalEnergyConsumption",
                    "nvmlDeviceGetTotalEccErrors",
                    "nvmlDeviceGetMigMode",
                },
            ),
        ]
    )
