"""XID error counting from NVML critical-error events.

XIDs are events, not state: a poll at scrape time would miss them, so one daemon thread waits on
an NVML event set with a short timeout (so close() is prompt) and counts what arrives. Label
values stay bounded: at most `max_xid_values` distinct xid values, the rest count as "other".
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Hashable
from typing import Any

log = logging.getLogger(__name__)

OTHER = "other"
UNKNOWN_DEVICE = ("unknown", "unknown")


class XidWatcher:
    """Counts XID events per (gpu, uuid, xid) in one stoppable daemon thread."""

    def __init__(
        self,
        nvml: Any,
        wait_ms: int = 500,
        max_xid_values: int = 64,
        retry_seconds: float = 5.0,
    ):
        self._nvml = nvml
        self._wait_ms = wait_ms
        self._max_xid_values = max_xid_values
        self._retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = {}
        self._xid_values: set[str] = set()
        self._closed = False
        self._unsupported = False  # no device delivers XID events: do not retry every scrape
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Starts the thread unless it runs or the watcher is closed; cheap to call often."""
        with self._lock:
            if self._closed or self._unsupported:
                return
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="nvml-xid", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stops the thread (releasing its NVML reference, so NVML can really re-initialise);
        counts are kept and `start()` may run it again."""
        with self._lock:
            self._stop.set()
            self._unsupported = False  # re-initialised NVML may see other devices
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("XID watcher did not stop within %.1f s", timeout)

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._closed = True
        self.stop(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def counts(self) -> dict[tuple[str, str, str], int]:
        """(gpu, uuid, xid) -> events seen since start."""
        with self._lock:
            return dict(self._counts)

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if not self._watch(stop):
                    return
            except Exception as exc:  # noqa: BLE001 - keep watching after GPU/driver faults
                log.warning("XID watcher: %s; retrying in %.0f s", exc, self._retry_seconds)
                stop.wait(self._retry_seconds)

    def _watch(self, stop: threading.Event) -> bool:
        """Waits for events until stopped; False when no device can report XIDs."""
        nvml = self._nvml
        nvml.nvmlInit()
        try:
            event_set = nvml.nvmlEventSetCreate()
            try:
                devices = self._register(event_set)
                if not devices:
                    log.info("no GPU supports XID events; XID watcher not running")
                    with self._lock:
                        self._unsupported = True
                    return False
                while not stop.is_set():
                    try:
                        data = nvml.nvmlEventSetWait_v2(event_set, self._wait_ms)
                    except nvml.NVMLError_Timeout:
                        continue
                    if data.eventType & nvml.nvmlEventTypeXidCriticalError:
                        device = devices.get(handle_key(data.device), UNKNOWN_DEVICE)
                        self._count(device, int(data.eventData))
                return True
            finally:
                _quietly(nvml, nvml.nvmlEventSetFree, event_set)
        finally:
            _quietly(nvml, nvml.nvmlShutdown)

    def _register(self, event_set: Any) -> dict[Hashable, tuple[str, str]]:
        """Handle key -> (gpu, uuid) for every device that delivers XID events."""
        nvml = self._nvml
        devices: dict[Hashable, tuple[str, str]] = {}
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            try:
                nvml.nvmlDeviceRegisterEvents(handle, nvml.nvmlEventTypeXidCriticalError, event_set)
            except nvml.NVMLError_NotSupported:
                continue
            uuid = nvml.nvmlDeviceGetUUID(handle)
            devices[handle_key(handle)] = (str(index), str(uuid))
        return devices

    def _count(self, device: tuple[str, str], xid: int) -> None:
        label = str(xid)
        with self._lock:
            if label not in self._xid_values:
                if len(self._xid_values) >= self._max_xid_values:
                    label = OTHER
                else:
                    self._xid_values.add(label)
            key = (*device, label)
            self._counts[key] = self._counts.get(key, 0) + 1
        log.warning("XID %d on gpu %s (%s)", xid, device[0], device[1])


def handle_key(handle: Any) -> Hashable:
    """Event data carries the device as a raw pointer: compare handles by address.

    Looking the device up by address instead of calling NVML keeps the XID that announces a
    lost GPU (when every NVML call on it fails). Non-ctypes handles compare as themselves.
    """
    try:
        return ctypes.cast(handle, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        return handle


def _quietly(nvml: Any, call: Any, *args: Any) -> None:
    try:
        call(*args)
    except nvml.NVMLError as exc:
        log.debug("ignored NVML error during XID watcher cleanup: %s", exc)
