"""Run every committed promtool unit test file in alerts/generated/tests/ with the real promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from alerts.generate import GENERATED, render

TESTS = sorted(
    (Path(__file__).resolve().parents[2] / "alerts" / "generated" / "tests").glob("*.test.yml")
)


def test_every_rendered_test_file_is_committed_and_run() -> None:
    names = {p.name for p in TESTS}
    assert {"slo_burn.test.yml", "guards.test.yml", "detection_delays.test.yml"} <= names
    assert any(name.startswith("replay_") for name in names)
    rendered = {rel.removeprefix(f"{GENERATED}/tests/") for rel in render() if "/tests/" in rel}
    assert names == rendered


@pytest.mark.parametrize("test_file", TESTS, ids=lambda p: p.name)
def test_promtool_test_rules(test_file: Path) -> None:
    result = subprocess.run(
        ["promtool", "test", "rules", test_file.name],
        cwd=test_file.parent, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "SUCCESS" in result.stdout
