"""Every answer counted as the client saw it (`inferwatch_http_responses_total`), including the
4xx and the pre-engine refusals the engine never sees, with labels only from the route table and
a fixed reason vocabulary."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inference.settings import Settings
from tests.support.exposition import value
from tests.support.service import RunningService, serve, small_engine
from tests.support.waiting import wait_until

NAME = "inferwatch_http_responses_total"


@pytest.fixture(scope="module")
def service() -> Iterator[RunningService]:
    thread, app, backend, spans = serve(small_engine(), Settings(max_body_bytes=4096))
    with thread as base_url:
        yield RunningService(app, backend, spans, base_url)


def _count(service: RunningService, route: str, cls: str, reason: str) -> float:
    return value(service.metrics_text(), NAME, route=route, status_class=cls, reason=reason) or 0


CASES = [
    # (method, path, body, status, route label, class, reason)
    ("POST", "/v1/completions", {"prompt": "hi", "max_tokens": 1}, 200,
     "/v1/completions", "2xx", "ok"),
    ("POST", "/v1/completions", {"prompt": "hi", "max_tokens": 0}, 400,
     "/v1/completions", "4xx", "invalid_request"),
    ("POST", "/v1/completions", {"prompt": "hi", "model": "nope"}, 404,
     "/v1/completions", "4xx", "model_not_found"),
    ("POST", "/v1/completions", {"prompt": "x" * 3000, "max_tokens": 2000}, 400,
     "/v1/completions", "4xx", "prompt_too_long"),
    ("POST", "/v1/completions", {"prompt": "x" * 9000}, 413,
     "/v1/completions", "4xx", "request_too_large"),
    ("GET", "/v1/completions", None, 405, "/v1/completions", "4xx", "method_not_allowed"),
    ("GET", "/no/such/path/for/a/label", None, 404, "other", "4xx", "not_found"),
    ("GET", "/v1/models", None, 200, "/v1/models", "2xx", "ok"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "status", "route", "cls", "reason"), CASES)
def test_each_answer_is_counted_once_with_its_reason(
    service: RunningService, method: str, path: str, body: object, status: int, route: str,
    cls: str, reason: str,
) -> None:  # fmt: skip
    before = _count(service, route, cls, reason)
    with service.client() as c:
        r = c.request(method, path, json=body)
    assert r.status_code == status, r.text
    assert wait_until(lambda: _count(service, route, cls, reason) == before + 1, timeout=10)


def test_labels_never_carry_client_text(service: RunningService) -> None:
    with service.client() as c:
        c.get("/attacker-chosen-label-value")
        c.post("/v1/completions", json={"prompt": "hi", "priority": "attacker-value"})
    text = service.metrics_text()
    assert "attacker" not in text
