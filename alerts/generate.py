"""`alerts.generate:render`, registered in inferwatch/generate.py: every file alerts/ generates.

All of it lands in alerts/generated/: the rule files (directly there), alertmanager.yml,
runbooks.md, and the promtool tests in alerts/generated/tests/; the same rules on vLLM's
metrics (alerts/vllm.py) in alerts/generated-vllm/.
"""

from __future__ import annotations

from pathlib import Path

from alerts.alertmanager import render_alertmanager
from alerts.annotations import Links
from alerts.detection_delays import render_delay_tests
from alerts.promtool_cases import render_promtool_tests
from alerts.replay_cases import render_replay_tests
from alerts.rules import render_rules
from alerts.runbooks import render_runbooks
from alerts.spec import SPEC, Spec
from alerts.values import VALUES_PATH, load_grafana_url, load_values
from alerts.vllm import GENERATED as VLLM_GENERATED
from alerts.vllm import render_vllm_rules

GENERATED = "alerts/generated"


def render(spec: Spec = SPEC, values_path: Path = VALUES_PATH) -> dict[str, str]:
    """{path relative to the repository root: content}; a spec copy renders the same set."""
    base = Links(load_values(values_path).runbook_url_base, load_grafana_url(values_path))
    files = {
        f"{GENERATED}/{n}": text for n, text in render_rules(spec, spec.prometheus, base).items()
    }
    files[f"{GENERATED}/alertmanager.yml"] = render_alertmanager(values_path)
    files[f"{GENERATED}/runbooks.md"] = render_runbooks(spec, base.grafana_url)
    tests = {
        **render_promtool_tests(spec, base),
        **render_delay_tests(spec, base),
        **render_replay_tests(spec, base),
    }
    files.update({f"{GENERATED}/tests/{name}": text for name, text in tests.items()})
    vllm_rules, _ = render_vllm_rules(base, spec)
    files.update({f"{VLLM_GENERATED}/{name}": text for name, text in vllm_rules.items()})
    return files
