"""XidWatcher against the FAKE NVML (tests/exporters/fake_nvml.py): no GPU exists here."""

from __future__ import annotations

import ctypes
import time
from types import SimpleNamespace

import pynvml

from exporters.xid import XidWatcher, handle_key
from tests.support.fake_nvml import FakeGpu, FakeNvml, two_gpus


def _until(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.02)


def _registered(fake: FakeNvml, devices: int) -> bool:
    return bool(fake.event_sets) and len(fake.event_sets[0].handles) == devices


def test_distinct_xid_values_are_capped_the_rest_count_as_other() -> None:
    fake = two_gpus()
    watcher = XidWatcher(fake, wait_ms=50, max_xid_values=2)
    watcher.start()
    try:
        _until(lambda: _registered(fake, 2), "registration")
        for index, xid in [(0, 13), (1, 31), (0, 43), (1, 79), (0, 13)]:
            fake.emit_xid(index, xid)
        _until(lambda: sum(watcher.counts().values()) == 5, "all five events counted")
    finally:
        watcher.close()
    uuid0, uuid1 = fake.gpus[0].uuid, fake.gpus[1].uuid
    assert watcher.counts() == {
        ("0", uuid0, "13"): 2,
        ("1", uuid1, "31"): 1,
        ("0", uuid0, "other"): 1,
        ("1", uuid1, "other"): 1,
    }


def test_devices_without_xid_events_are_skipped_and_none_means_no_thread() -> None:
    fake = FakeNvml(
        [
            FakeGpu(uuid="GPU-a", unsupported={"nvmlDeviceRegisterEvents"}),
            FakeGpu(uuid="GPU-b"),
        ]
    )
    watcher = XidWatcher(fake, wait_ms=50)
    watcher.start()
    _until(lambda: _registered(fake, 1), "GPU-b registered")
    watcher.close()
    assert fake.refcount == 0

    nothing = FakeNvml([FakeGpu(uuid="GPU-a", unsupported={"nvmlDeviceRegisterEvents"})])
    idle = XidWatcher(nothing, wait_ms=50)
    idle.start()
    _until(lambda: not idle.running, "watcher gives up without a device to watch")
    idle.start()  # no retry per scrape
    assert nothing.calls["nvmlEventSetCreate"] == 1
    assert nothing.refcount == 0 and nothing.event_sets == []


def test_watcher_survives_a_lost_gpu_and_watches_again() -> None:
    fake = two_gpus()
    watcher = XidWatcher(fake, wait_ms=50, retry_seconds=0.05)
    watcher.start()
    try:
        _until(lambda: _registered(fake, 2), "registration")
        fake.lose_gpu()
        _until(lambda: fake.refcount == 0, "watcher released NVML after the loss")
        fake.recover_gpu()
        _until(lambda: _registered(fake, 2), "registration after recovery")
        fake.emit_xid(1, 79)
        _until(lambda: watcher.counts() == {("1", fake.gpus[1].uuid, "79"): 1}, "XID counted")
    finally:
        watcher.close()
    assert not watcher.running


def test_close_is_prompt_while_waiting_for_events() -> None:
    fake = two_gpus()
    watcher = XidWatcher(fake)  # the default 500 ms wait
    watcher.start()
    _until(lambda: fake.calls["nvmlEventSetWait_v2"] >= 1, "waiting for events")
    started = time.monotonic()
    watcher.close()
    assert time.monotonic() - started < 1.5
    assert not watcher.running
    assert fake.calls["nvmlEventSetFree"] == 1 and fake.refcount == 0
    watcher.start()  # closed for good
    assert not watcher.running


def test_event_from_an_unregistered_handle_counts_as_unknown_device() -> None:
    """The device of an event is matched by handle, without an NVML call that could fail on a
    lost GPU; an unmatched handle still counts, on a bounded "unknown" label set."""
    fake = two_gpus()
    watcher = XidWatcher(fake, wait_ms=50)
    watcher.start()
    try:
        _until(lambda: _registered(fake, 2), "registration")
        event = SimpleNamespace(
            device=object(),
            eventType=pynvml.nvmlEventTypeXidCriticalError,
            eventData=79,
            gpuInstanceId=0,
            computeInstanceId=0,
        )
        fake.event_sets[0].events.put(event)
        _until(lambda: watcher.counts() == {("unknown", "unknown", "79"): 1}, "counted")
    finally:
        watcher.close()
    assert fake.calls["nvmlDeviceGetUUID"] == 2  # at registration only


def test_real_pynvml_handles_match_by_address() -> None:
    """Event data holds a new ctypes pointer object for the same device: equal by address."""
    device = pynvml.struct_c_nvmlDevice_t()
    registered = ctypes.cast(ctypes.pointer(device), pynvml.c_nvmlDevice_t)
    from_event = ctypes.cast(ctypes.addressof(device), pynvml.c_nvmlDevice_t)
    assert registered is not from_event
    assert handle_key(registered) == handle_key(from_event) == ctypes.addressof(device)
