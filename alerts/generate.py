"""`alerts.generate:render`, registered in inferwatch/generate.py: every file alerts/ generates."""

from __future__ import annotations

from alerts.alertmanager import render_alertmanager
from alerts.rules import render_rules
from alerts.runbooks import render_runbooks
from alerts.spec import SPEC
from alerts.unit_tests import render_unit_tests

GENERATED = "alerts/generated"


def render() -> dict[str, str]:
    rules = render_rules(SPEC, SPEC.prometheus)
    files = {f"{GENERATED}/{name}": text for name, text in rules.items()}
    files[f"{GENERATED}/alertmanager.yml"] = render_alertmanager()
    files["alerts/runbooks.md"] = render_runbooks(SPEC)
    files.update(render_unit_tests(SPEC))
    return files
