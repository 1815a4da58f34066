"""A seventh baseline signal is a one-place change: the spec entry alone renders every file.

The signal is added to a copy of the spec; rules, runbook and promtool tests come out with the
new alert in them, promtool accepts the rule file, and the new signal's generated promtool tests
pass against it, with no registry beside the spec to update.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
import yaml

from alerts.generate import GENERATED, render
from alerts.runbooks import NO_ENTRY
from alerts.sli import HistogramQuantile
from alerts.spec import PER_MODEL, SPEC, Action, BaselineSignal

ROOT = Path(__file__).resolve().parents[2]
SEVENTH = BaselineSignal(
    alert="InferwatchTimePerOutputTokenAboveBaseline",
    sli=HistogramQuantile(metric="inferwatch_time_per_output_token_seconds", q=0.95, by=PER_MODEL),
    floor=0.01,
    cold_start_threshold=0.2,
    action=Action.CAP_TOKENS,
    what="p95 time per output token",
    unit="s",
    min_events=60,
)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Every generated file of the spec plus SEVENTH, written under a scratch repository root.
    (A histogram the service does not export yet: the synthetic series take the latency
    buckets.)"""
    spec = dataclasses.replace(SPEC, baselines=(*SPEC.baselines, SEVENTH))
    files = render(spec)
    root = tmp_path_factory.mktemp("seventh")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root, files


def test_every_file_renders_with_the_new_alert(rendered: tuple[Path, dict[str, str]]) -> None:
    _, files = rendered
    new_test = f"{GENERATED}/tests/baseline_time_per_output_token.test.yml"
    assert set(files) == set(render()) | {new_test}
    rules = yaml.safe_load(files[f"{GENERATED}/baselines.rules.yml"])["groups"][0]["rules"]
    alerts = [r for r in rules if r.get("alert") == SEVENTH.alert]
    assert [a["labels"]["basis"] for a in alerts] == ["baseline", "fleet", "cold_start"]
    assert all(a["labels"]["action"] == "cap_tokens" for a in alerts)
    runbook = files[f"{GENERATED}/runbooks.md"]
    assert f"\n## {SEVENTH.alert}\n\n**Meaning.** {NO_ENTRY}\n" in runbook
    assert "model:inferwatch_time_per_output_token_seconds:p95_rate5m_baseline" in runbook
    assert f"| `{SEVENTH.alert}` |" in runbook  # its measured detection delay
    assert SEVENTH.alert in files[new_test]


def test_promtool_accepts_the_rules_and_passes_the_new_tests(
    rendered: tuple[Path, dict[str, str]],
) -> None:
    root, _ = rendered
    generated = root / GENERATED
    rule_files = sorted(p.name for p in generated.glob("*.rules.yml"))
    checked = _run(["promtool", "check", "rules", *rule_files], generated)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _run(
        ["promtool", "test", "rules", "baseline_time_per_output_token.test.yml"],
        generated / "tests",
    )
    assert tested.returncode == 0, tested.stdout[-4000:] + tested.stderr[-2000:]
    assert "SUCCESS" in tested.stdout
