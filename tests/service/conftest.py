"""Fixtures of the service tests (helpers: tests/support/service.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.service import RunningService, serve


@pytest.fixture(scope="module")
def service() -> Iterator[RunningService]:
    """One service per test module (state such as counters is shared within the module)."""
    thread, app, backend, spans = serve()
    with thread as base_url:
        yield RunningService(app, backend, spans, base_url)
