"""Run every committed promtool unit test file in alerts/generated/tests/ with the real promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from alerts.promtool_cases import render_promtool_tests
from alerts.spec import SPEC
from alerts.values import load_values

TESTS = sorted(
    (Path(__file__).resolve().parents[2] / "alerts" / "generated" / "tests").glob("*.test.yml")
)


def test_there_is_a_test_file_per_rule_file() -> None:
    names = {p.name for p in TESTS}
    assert {"slo_burn.test.yml", "guards.test.yml"} <= names
    assert names == set(render_promtool_tests(SPEC, load_values().runbook_url_base))


@pytest.mark.parametrize("test_file", TESTS, ids=lambda p: p.name)
def test_promtool_test_rules(test_file: Path) -> None:
    result = subprocess.run(
        ["promtool", "test", "rules", test_file.name],
        cwd=test_file.parent, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "SUCCESS" in result.stdout
