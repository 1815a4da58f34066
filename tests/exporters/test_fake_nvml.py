"""The FAKE NVML (no GPU here) must not drift from the real pynvml it stands in for."""

from __future__ import annotations

import inspect

import pynvml

from tests.support.fake_nvml import FakeNvml


def test_every_fake_function_has_pynvml_s_name_and_parameters() -> None:
    fake_functions = [n for n in dir(FakeNvml) if n.startswith("nvml")]
    assert len(fake_functions) > 15
    for name in fake_functions:
        real = getattr(pynvml, name, None)
        assert callable(real), f"pynvml has no {name}"
        fake_params = list(inspect.signature(getattr(FakeNvml, name)).parameters)[1:]  # self
        assert fake_params == list(inspect.signature(real).parameters), name


def test_errors_and_constants_are_the_real_ones() -> None:
    fake = FakeNvml([])
    assert fake.NVMLError_GpuIsLost is pynvml.NVMLError_GpuIsLost
    assert fake.nvmlClocksEventReasonSwPowerCap == pynvml.nvmlClocksEventReasonSwPowerCap
    assert fake.nvmlEventTypeXidCriticalError == pynvml.nvmlEventTypeXidCriticalError
