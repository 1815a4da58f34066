"""GpuSource against the FAKE NVML (tests/exporters/fake_nvml.py): no GPU exists here.

The fake reuses pynvml's real error classes and constants, so every except clause and bit test
below is the exporter's real code path.
"""

from __future__ import annotations

import threading
import time

import pynvml

from exporters.collector import CollectorGroup
from exporters.gpu import GpuSource, nvml_available
from exporters.host import HostSource
from exporters.nvml_device import CLOCK_EVENT_REASONS
from tests.support.exposition import exposition, names, value
from tests.support.fake_nvml import FakeGpu, FakeNvml, two_gpus

GPU0 = {"gpu": "0", "uuid": "GPU-0a1b2c3d-0000-0000-0000-000000000000"}
GPU1 = {"gpu": "1", "uuid": "GPU-0a1b2c3d-1111-1111-1111-111111111111"}


def source(fake: FakeNvml, **kwargs: object) -> GpuSource:
    kwargs.setdefault("watch_xid", False)
    kwargs.setdefault("cache_seconds", 0.0)
    return GpuSource(nvml=fake, **kwargs)  # type: ignore[arg-type]


def test_registration_makes_no_nvml_call(fake: FakeNvml) -> None:
    gpu = source(fake)
    from prometheus_client import CollectorRegistry

    CollectorRegistry().register(CollectorGroup([gpu]))
    assert sum(fake.calls.values()) == 0


def test_two_gpus_in_base_units(fake: FakeNvml) -> None:
    text = exposition(CollectorGroup([source(fake)]))
    assert value(text, "inferwatch_gpu_up") == 1
    assert value(text, "inferwatch_gpu_utilization_ratio", **GPU0) == 0.5
    assert value(text, "inferwatch_gpu_utilization_ratio", **GPU1) == 0.07
    assert value(text, "inferwatch_gpu_power_watts", **GPU0) == 250.0
    assert value(text, "inferwatch_gpu_power_limit_watts", **GPU0) == 700.0
    assert value(text, "inferwatch_gpu_energy_joules_total", **GPU0) == 123456.789
    assert value(text, "inferwatch_gpu_sm_clock_hertz", **GPU1) == 1695e6
    assert value(text, "inferwatch_gpu_temperature_celsius", **GPU1) == 61
    assert value(text, "inferwatch_gpu_memory_total_bytes", **GPU0) == 80 * 2**30
    assert value(text, "inferwatch_gpu_memory_used_bytes", **GPU0) == 20 * 2**30
    # v2 memory info: free excludes the driver's reserved share.
    assert value(text, "inferwatch_gpu_memory_free_bytes", **GPU0) == (60 * 2**30 - 512 * 2**20)
    assert value(text, "inferwatch_gpu_ecc_errors_total", **GPU0, type="corrected") == 3
    assert value(text, "inferwatch_gpu_ecc_errors_total", **GPU0, type="uncorrected") == 0
    info = dict(
        GPU1,
        name="NVIDIA A10",
        driver_version="570.124.06",
        pci_bus_id="00000000:65:00.0",
        mig_mode="unsupported",
    )
    assert value(text, "inferwatch_gpu_info", **info) == 1


def test_every_known_clock_event_reason_is_one_series(fake: FakeNvml) -> None:
    text = exposition(CollectorGroup([source(fake)]))
    active = {
        reason: value(text, "inferwatch_gpu_clock_event_active", **GPU1, reason=reason)
        for reason in CLOCK_EVENT_REASONS
    }
    assert active.pop("gpu_idle") == 1
    assert active.pop("sw_thermal_slowdown") == 1
    assert set(active.values()) == {0}


def test_unsupported_fields_are_left_out_not_zero(fake: FakeNvml) -> None:
    text = exposition(CollectorGroup([source(fake)]))
    for name in (
        "inferwatch_gpu_power_watts",
        "inferwatch_gpu_power_limit_watts",
        "inferwatch_gpu_energy_joules_total",
    ):
        assert value(text, name, **GPU0) is not None, name
        assert value(text, name, **GPU1) is None, name
    assert value(text, "inferwatch_gpu_ecc_errors_total", **GPU1, type="corrected") is None
    assert 'gpu="1"' in text  # GPU 1 itself is there


def test_family_no_device_supports_is_absent() -> None:
    fake = FakeNvml([FakeGpu(uuid="GPU-x", unsupported={"nvmlDeviceGetTotalEnergyConsumption"})])
    text = exposition(CollectorGroup([source(fake)]))
    assert "inferwatch_gpu_energy_joules" not in text
    assert value(text, "inferwatch_gpu_up") == 1


def test_older_driver_without_current_calls_keeps_the_fields(fake: FakeNvml) -> None:
    """Drivers released before the current calls raise FunctionNotFound for them; the older
    equivalent is used there, and only there (the fake fails a test that calls a deprecated
    function while the current one exists)."""
    fake.missing = {
        "nvmlDeviceGetTemperatureV",
        "nvmlDeviceGetMemoryInfo_v2",
        "nvmlDeviceGetCurrentClocksEventReasons",
    }
    text = exposition(CollectorGroup([source(fake)]))
    assert value(text, "inferwatch_gpu_up") == 1
    assert value(text, "inferwatch_gpu_temperature_celsius", **GPU1) == 61
    # v1 memory info counts the driver's reserved share as used.
    assert value(text, "inferwatch_gpu_memory_used_bytes", **GPU0) == 20 * 2**30 + 512 * 2**20
    assert value(text, "inferwatch_gpu_clock_event_active", **GPU1, reason="gpu_idle") == 1


def test_mig_enabled_reports_no_utilisation_and_labels_the_mode() -> None:
    fake = FakeNvml(
        [
            FakeGpu(uuid="GPU-mig", mig_mode=pynvml.NVML_DEVICE_MIG_ENABLE),
            FakeGpu(uuid="GPU-whole", pci_bus_id=b"00000000:18:00.0"),
        ]
    )
    text = exposition(CollectorGroup([source(fake)]))
    assert value(text, "inferwatch_gpu_utilization_ratio", gpu="0", uuid="GPU-mig") is None
    assert value(text, "inferwatch_gpu_utilization_ratio", gpu="1", uuid="GPU-whole") == 0.5
    assert 'mig_mode="enabled"' in text and 'uuid="GPU-mig"' in text
    assert 'mig_mode="disabled"' in text
    assert value(text, "inferwatch_gpu_memory_used_bytes", gpu="0", uuid="GPU-mig") is not None
    # Not even asked: NVML cannot measure it on a MIG-partitioned GPU.
    assert fake.calls["nvmlDeviceGetUtilizationRates"] == 1


def test_nvml_error_mid_scrape_gives_up_0_and_a_clean_200(fake: FakeNvml, serve) -> None:
    group = CollectorGroup([source(fake)])
    served = serve(group)
    fake.fail["nvmlDeviceGetTemperatureV"] = pynvml.NVML_ERROR_UNKNOWN  # GPU 0 already read
    status, _, body = served.get()
    assert status == 200
    assert value(body, "inferwatch_gpu_up") == 0
    assert value(body, "inferwatch_exporter_collect_errors_total", collector="gpu") == 1
    assert not any(
        n.startswith("inferwatch_gpu_") and n != "inferwatch_gpu_up" for n in names(body)
    )
    assert value(body, "inferwatch_exporter_collect_duration_seconds", collector="gpu") is not None

    del fake.fail["nvmlDeviceGetTemperatureV"]
    status, _, body = served.get()
    assert status == 200
    assert value(body, "inferwatch_gpu_up") == 1
    assert value(body, "inferwatch_exporter_collect_errors_total", collector="gpu") == 1


def test_no_nvml_library_gives_up_0_and_counts_every_failed_collection() -> None:
    fake = two_gpus()
    fake.fail["nvmlInit"] = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
    group = CollectorGroup([source(fake)])
    exposition(group)
    text = exposition(group)
    assert value(text, "inferwatch_gpu_up") == 0
    assert value(text, "inferwatch_exporter_collect_errors_total", collector="gpu") == 2


def test_gpu_lost_then_back_reinitialises_nvml(fake: FakeNvml) -> None:
    group = CollectorGroup([source(fake)])
    assert value(exposition(group), "inferwatch_gpu_up") == 1
    assert fake.calls["nvmlInit"] == 1

    fake.lose_gpu()
    text = exposition(group)
    assert value(text, "inferwatch_gpu_up") == 0
    assert "inferwatch_gpu_memory_used_bytes" not in text

    fake.recover_gpu()  # hardware back; the old NVML state still reports GpuIsLost
    text = exposition(group)
    assert value(text, "inferwatch_gpu_up") == 1
    assert value(text, "inferwatch_gpu_memory_used_bytes", **GPU1) == 2**30
    assert fake.calls["nvmlShutdown"] == 1
    assert fake.calls["nvmlInit"] == 2
    assert value(text, "inferwatch_exporter_collect_errors_total", collector="gpu") == 1


def test_gpu_lost_with_xid_watcher_releases_its_nvml_reference(fake: FakeNvml) -> None:
    """NVML only re-initialises when every reference is released: the watcher's as well."""
    gpu = source(fake, watch_xid=True)
    group = CollectorGroup([gpu])
    try:
        assert value(exposition(group), "inferwatch_gpu_up") == 1
        _wait_for(lambda: fake.refcount == 2, "watcher holds its own NVML reference")
        fake.lose_gpu()
        assert value(exposition(group), "inferwatch_gpu_up") == 0
        fake.recover_gpu()
        assert value(exposition(group), "inferwatch_gpu_up") == 1
        _wait_for(lambda: any(s.handles for s in fake.event_sets), "watcher re-registered")
        assert fake.emit_xid(0, 79) == 1
        _wait_for(
            lambda: (
                value(exposition(group), "inferwatch_gpu_xid_errors_total", **GPU0, xid="79") == 1
            ),
            "XID counted after recovery",
        )
    finally:
        gpu.close()
    assert fake.refcount == 0


def test_hung_nvml_delays_one_scrape_by_the_timeout_then_fails_fast(fake: FakeNvml, serve) -> None:
    """A hung NVML call (as when nvidia-smi freezes) must not hang /metrics or pile up passes."""
    release = threading.Event()
    fake.hang["nvmlDeviceGetCount"] = release
    served = serve(CollectorGroup([source(fake, timeout_seconds=2.0), HostSource()]))
    try:
        started = time.monotonic()
        status, _, body = served.get()
        first = time.monotonic() - started
        assert status == 200 and 1.9 < first < 10
        assert value(body, "inferwatch_gpu_up") == 0
        assert "inferwatch_host_memory_used_bytes" in names(body)

        started = time.monotonic()
        status, _, body = served.get()
        assert status == 200 and time.monotonic() - started < 1.0
        assert value(body, "inferwatch_gpu_up") == 0
        assert value(body, "inferwatch_exporter_collect_errors_total", collector="gpu") == 2
        assert fake.calls["nvmlDeviceGetCount"] == 1  # the hung pass, and no second one
    finally:
        release.set()
    _wait_for(lambda: value(served.get()[2], "inferwatch_gpu_up") == 1, "recovery after the hang")


def test_cache_serves_concurrent_scrapers_from_one_nvml_pass(fake: FakeNvml) -> None:
    now = [100.0]
    gpu = source(fake, cache_seconds=1.0, clock=lambda: now[0])
    group = CollectorGroup([gpu])
    first = exposition(group)
    now[0] += 0.5
    second = exposition(group)
    assert fake.calls["nvmlDeviceGetCount"] == 1
    assert value(second, "inferwatch_gpu_power_watts", **GPU0) == 250.0
    assert first.count("inferwatch_gpu_power_watts{") == second.count("inferwatch_gpu_power_watts{")

    fake.gpus[0].power_mw = 300_000
    now[0] += 0.6  # 1.1 s after the pass: stale
    third = exposition(group)
    assert fake.calls["nvmlDeviceGetCount"] == 2
    assert value(third, "inferwatch_gpu_power_watts", **GPU0) == 300.0


def test_cache_is_one_pass_under_concurrent_threads(fake: FakeNvml) -> None:
    from concurrent.futures import ThreadPoolExecutor

    group = CollectorGroup([source(fake, cache_seconds=30.0)])
    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(lambda _: exposition(group), range(16)))
    assert fake.calls["nvmlDeviceGetCount"] == 1
    assert all(value(t, "inferwatch_gpu_up") == 1 for t in texts)


def test_xid_events_counted_by_xid_and_watcher_stops_on_close(fake: FakeNvml) -> None:
    gpu = source(fake, watch_xid=True)
    group = CollectorGroup([gpu])
    exposition(group)  # the first successful collection starts the watcher
    _wait_for(
        lambda: len(fake.event_sets) == 1 and len(fake.event_sets[0].handles) == 2,
        "both GPUs registered for XID events",
    )
    for index, xid in [(0, 79), (0, 79), (1, 13), (0, 48)]:
        fake.emit_xid(index, xid)

    def counted() -> bool:
        text = exposition(group)
        return value(text, "inferwatch_gpu_xid_errors_total", **GPU0, xid="48") == 1

    _wait_for(counted, "XID events counted")
    text = exposition(group)
    assert value(text, "inferwatch_gpu_xid_errors_total", **GPU0, xid="79") == 2
    assert value(text, "inferwatch_gpu_xid_errors_total", **GPU1, xid="13") == 1

    # Counts survive an NVML failure: the XID before a lost GPU is the one that matters.
    fake.fail["nvmlDeviceGetCount"] = pynvml.NVML_ERROR_NO_PERMISSION
    text = exposition(group)
    assert value(text, "inferwatch_gpu_up") == 0
    assert value(text, "inferwatch_gpu_xid_errors_total", **GPU0, xid="79") == 2

    started = time.monotonic()
    gpu.close()
    assert time.monotonic() - started < 2.0
    assert not gpu._xid.running  # type: ignore[union-attr]
    assert fake.event_sets == [] and fake.refcount == 0


def test_nvml_available() -> None:
    assert nvml_available(two_gpus()) is True
    assert nvml_available(FakeNvml([])) is False
    broken = two_gpus()
    broken.fail["nvmlInit"] = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    assert nvml_available(broken) is False
    assert broken.refcount == 0
    assert nvml_available() is False  # the real pynvml on this GPU-less machine


def _wait_for(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for: {what}")
