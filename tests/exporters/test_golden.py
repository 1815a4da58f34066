"""The whole GPU exposition for a fixed FAKE NVML (tests/support/fake_nvml.py, no GPU here),
compared with golden/two_gpus.prom, and linted by the real promtool.

Regenerate after an intended change: UPDATE_GOLDEN=1 .venv/bin/pytest tests/exporters/test_golden.py
rewrites the file and FAILS (a run that writes the golden file cannot also vouch for it);
review `git diff`, then run again without the variable.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from exporters.collector import CollectorGroup
from exporters.gpu import GpuSource
from tests.support.exposition import exposition, promtool_findings, value
from tests.support.fake_nvml import two_gpus

GOLDEN = Path(__file__).parent / "golden" / "two_gpus.prom"
DURATION = re.compile(r"^(inferwatch_exporter_collect_duration_seconds\{.*?\}) \S+$", re.M)


@pytest.fixture(scope="module")
def two_gpu_exposition() -> str:
    fake = two_gpus()
    gpu = GpuSource(nvml=fake, cache_seconds=0.0)
    group = CollectorGroup([gpu])
    try:
        exposition(group)  # starts the XID watcher
        deadline = time.monotonic() + 10
        while not (fake.event_sets and len(fake.event_sets[0].handles) == 2):
            assert time.monotonic() < deadline, "XID watcher did not register"
            time.sleep(0.02)
        fake.emit_xid(0, 79)
        while (
            value(
                text := exposition(group),
                "inferwatch_gpu_xid_errors_total",
                gpu="0",
                uuid=fake.gpus[0].uuid,
                xid="79",
            )
            != 1
        ):
            assert time.monotonic() < deadline, "XID not counted"
            time.sleep(0.02)
    finally:
        gpu.close()
    return text


def test_exposition_matches_golden(two_gpu_exposition: str) -> None:
    masked = DURATION.sub(r"\1 <masked>", two_gpu_exposition)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(masked)
        pytest.fail(f"rewrote {GOLDEN.name}: review the diff, then rerun without UPDATE_GOLDEN")
    assert masked == GOLDEN.read_text(), "exposition changed; see the module docstring"


def test_promtool_has_no_findings(two_gpu_exposition: str) -> None:
    assert promtool_findings(two_gpu_exposition) == ""
