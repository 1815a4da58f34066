"""API keys from a file, over real HTTP: unknown key 401, a key limited to standard cannot get
premium (403), a key over its rate gets 429 with Retry-After; refusals that can never succeed
as sent say `x-should-retry: false`; the tenant (from the file) is on the span, never a label."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from inference.admission.keys import KeyRing
from tests.admission.conftest import post, running
from tests.support.exposition import total

STANDARD_KEY = "sk-standard-key-0123456789"
PREMIUM_KEY = "sk-premium-key-9876543210"


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "keys": [
                    {"key": STANDARD_KEY, "tenant": "acme", "max_priority": "standard",
                     "rate": 0.5, "burst": 2},
                    {"key_sha256": hashlib.sha256(PREMIUM_KEY.encode()).hexdigest(),
                     "tenant": "globex", "max_priority": "premium"},
                ]
            }
        )
    )  # fmt: skip
    return path


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_keys(keys_file: Path) -> None:
    with running(api_keys_file=str(keys_file)) as svc, svc.client() as c:
        missing = post(c, "standard")
        assert missing.status_code == 401 and missing.headers["x-should-retry"] == "false"
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["code"] == "invalid_api_key"
        unknown = c.post(
            "/v1/completions", json={"prompt": "x", "max_tokens": 1}, headers=bearer("sk-nope")
        )
        assert unknown.status_code == 401
        assert c.get("/v1/models").status_code == 401
        assert c.get("/v1/models", headers=bearer(PREMIUM_KEY)).status_code == 200

        c.headers.update(bearer(STANDARD_KEY))
        above = post(c, "premium")
        assert above.status_code == 403 and above.json()["error"]["code"] == "priority_not_allowed"
        assert above.headers["x-should-retry"] == "false" and "retry-after" not in above.headers
        assert post(c, "standard").status_code == 200  # burst 2: this and the next
        assert post(c, "batch").status_code == 200
        limited = post(c, "standard")
        assert limited.status_code == 429 and limited.json()["error"]["code"] == (
            "rate_limit_exceeded"
        )
        assert 1 <= int(limited.headers["retry-after"]) <= 120
        assert int(limited.headers["retry-after-ms"]) >= 800  # 0.5/s: about 2 s away, jittered

        c.headers.update(bearer(PREMIUM_KEY))
        assert post(c, "premium").status_code == 200  # another key, its own bucket
        text = svc.metrics_text()
    reasons = {"invalid_api_key": 2, "priority_not_allowed": 1, "rate_limited": 1}
    for reason, count in reasons.items():
        assert total(text, "inferwatch_request_rejections_total", reason=reason) == count
    assert "acme" not in text and "globex" not in text  # tenants are not label values
    tenants = {
        (s.attributes or {}).get("inferwatch.tenant") for s in svc.spans.get_finished_spans()
    }
    assert {"acme", "globex"} <= tenants


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"key": "short", "tenant": "a"}, "at least 16"),
        ({"key": STANDARD_KEY, "tenant": "a b"}, "tenant"),
        ({"key": STANDARD_KEY, "key_sha256": "00", "tenant": "a"}, "exactly one"),
        ({"key": STANDARD_KEY, "tenant": "a", "max_priority": "gold"}, "gold"),
        ({"key": STANDARD_KEY, "tenant": "a", "colour": "red"}, "unknown fields"),
    ],
)
def test_a_bad_key_file_is_refused(tmp_path: Path, entry: dict[str, str], message: str) -> None:
    path = tmp_path / "keys.yml"
    path.write_text(yaml.safe_dump({"keys": [entry]}))
    with pytest.raises(ValueError, match=message):
        KeyRing.load(path)
