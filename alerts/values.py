"""The deployment's values: where notifications go and where the runbook is served.

Who gets what (the routing tree) and when (the thresholds) is policy and lives in code; these are
facts about one deployment, read from a values file (alerts/values.yml unless told otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import yaml

VALUES_PATH = Path(__file__).resolve().parent / "values.yml"


@dataclass(frozen=True, kw_only=True)
class Values:
    pager_url: str
    ticket_url: str
    deadmans_switch_url: str
    service_webhook_url: str
    service_webhook_credentials_file: str
    runbook_url_base: str  # every alert's runbook_url is this plus `#<alert name, lower case>`


def load_values(path: Path = VALUES_PATH) -> Values:
    """Every key, and only those: a typo must not leave a receiver on its placeholder."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    expected = {f.name for f in fields(Values)}
    missing, unknown = expected - data.keys(), data.keys() - expected
    if missing or unknown:
        raise ValueError(f"{path}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    return Values(**{name: str(data[name]) for name in expected})
