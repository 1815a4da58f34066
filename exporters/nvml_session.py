"""NVML initialisation that heals itself after the GPU or the driver goes away.

After a GPU falls off the bus or the driver is reloaded, every call on the old NVML state keeps
failing; only shutdown + init gets fresh handles. NVML counts init/shutdown pairs, so each user
(the collector, the XID watcher) holds its own reference.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

# Errors after which the current NVML state is no use: re-initialise on the next collection.
_REINIT_ERRORS = (
    "NVMLError_GpuIsLost",
    "NVMLError_Uninitialized",
    "NVMLError_DriverNotLoaded",
    "NVMLError_Unknown",
    "NVMLError_ResetRequired",
    "NVMLError_LibRmVersionMismatch",
    "NVMLError_GpuNotFound",
)


def needs_reinit(nvml: Any, exc: BaseException) -> bool:
    classes = tuple(getattr(nvml, n) for n in _REINIT_ERRORS if hasattr(nvml, n))
    return isinstance(exc, classes)


class NvmlSession:
    """One NVML reference: initialised on first use, re-initialised after a fatal error."""

    def __init__(self, nvml: Any):
        self._nvml = nvml
        self._lock = threading.Lock()
        self._initialised = False
        self._stale = False

    def ensure(self) -> None:
        """Makes NVML usable; raises the NVML error when it cannot be (no driver, no library)."""
        with self._lock:
            if self._initialised and not self._stale:
                return
            if self._initialised:
                log.info("re-initialising NVML after a GPU or driver error")
                self._shutdown()
            self._nvml.nvmlInit()
            self._initialised = True
            self._stale = False

    def note_failure(self, exc: BaseException) -> bool:
        """True when the error means re-initialise before the next use."""
        if not needs_reinit(self._nvml, exc):
            return False
        with self._lock:
            self._stale = True
        return True

    def close(self) -> None:
        with self._lock:
            if self._initialised:
                self._shutdown()

    def _shutdown(self) -> None:
        self._initialised = False
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError as exc:
            log.debug("nvmlShutdown failed (ignored, state is discarded anyway): %s", exc)
