"""The real service (real engine, real HTTP) with admission configured for a test."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from inference.admission.config import AdmissionConfig
from inference.settings import Settings
from tests.admission.doubles import ADMIN_TOKEN
from tests.support.service import RunningService, serve, small_engine

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
Running = Callable[..., Any]


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "admin.token"
    path.write_text(ADMIN_TOKEN + "\n")
    return path


@contextmanager
def running(engine: dict[str, Any] | None = None, **admission: Any) -> Iterator[RunningService]:
    """`admission` fields override AdmissionConfig's defaults."""
    config = dataclasses.replace(AdmissionConfig(), **admission)
    thread, app, backend, spans = serve(small_engine(**(engine or {})), Settings(admission=config))
    with thread as base_url:
        yield RunningService(app, backend, spans, base_url)


def level(service: RunningService) -> int:
    with service.client() as c:
        return int(c.get("/admin/degradation", headers=ADMIN).json()["level"])


def post(client: httpx.Client, priority: str, **body: Any) -> httpx.Response:
    payload = {"prompt": f"{priority} request", "max_tokens": 8, "priority": priority, **body}
    return client.post("/v1/completions", json=payload)
