"""The admin endpoints of the degradation controller, all behind the admin bearer token:

- `POST /admin/alerts`: Alertmanager's webhook (payload version 4; its `credentials_file` holds
  the same token). 200 accepted or duplicate, 400 malformed, 401 without the right token.
- `GET /admin/degradation`: level, why, what each trigger asks for, since when.
- `POST /admin/degradation`: `{"level": 2, "reason": "...", "ttl_seconds": 600}` pins the
  level; `{"level": null, "reason": "..."}` hands it back to the triggers.

Without a configured token (or without the controller) every one of them is a 404.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from inference.admission.assembly import Admission
from inference.admission.controller import ALERTMANAGER
from inference.admission.notifications import INVALID, UNAUTHORIZED, InvalidNotification
from inference.api.auth import bearer_token, token_matches
from inference.api.errors import error_response

router = APIRouter()

MAX_OVERRIDE_SECONDS = 7 * 86400


class OverrideBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: int | None = Field(ge=0)
    reason: str = Field(min_length=1, max_length=200)
    ttl_seconds: float | None = Field(default=None, gt=0, le=MAX_OVERRIDE_SECONDS)


def _admission(request: Request) -> Admission:
    admission: Admission | None = request.app.state.service.admission
    if admission is None or admission.admin_token is None or admission.controller is None:
        raise HTTPException(404, "Not Found")
    return admission


def _authorized(request: Request, admission: Admission) -> bool:
    assert admission.admin_token is not None
    return token_matches(bearer_token(request), admission.admin_token)


def _unauthorized() -> JSONResponse:
    return error_response(
        401,
        "a valid admin bearer token is required",
        code="invalid_admin_token",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _count(request: Request, status: str) -> None:
    metrics = request.app.state.service.metrics
    if metrics is not None:
        metrics.alert_notifications.labels(status).inc()


@router.post("/admin/alerts", include_in_schema=False)
async def alerts(request: Request) -> JSONResponse:
    admission = _admission(request)
    if not _authorized(request, admission):
        _count(request, UNAUTHORIZED)
        return _unauthorized()
    assert admission.alertmanager is not None and admission.controller is not None
    try:
        payload = json.loads(await request.body())
        status = admission.alertmanager.receive(payload)
    except (ValueError, InvalidNotification) as exc:  # JSONDecodeError is a ValueError
        _count(request, INVALID)
        message = str(exc) if isinstance(exc, InvalidNotification) else "the body is not JSON"
        return error_response(400, message, code="invalid_notification")
    _count(request, status)
    admission.controller.set_demands(ALERTMANAGER, admission.alertmanager.demands())
    return JSONResponse({"status": status, "level": admission.controller.level})


@router.get("/admin/degradation", include_in_schema=False)
async def degradation(request: Request) -> JSONResponse:
    admission = _admission(request)
    if not _authorized(request, admission):
        return _unauthorized()
    return JSONResponse(admission.snapshot())


@router.post("/admin/degradation", include_in_schema=False)
async def override(request: Request) -> JSONResponse:
    admission = _admission(request)
    if not _authorized(request, admission):
        return _unauthorized()
    assert admission.controller is not None
    try:
        body = OverrideBody.model_validate_json(await request.body())
    except ValueError as exc:
        return error_response(400, _first_error(exc), code="invalid_override")
    try:
        admission.controller.override(body.level, body.reason, body.ttl_seconds)
    except ValueError as exc:  # a level past the top of the ladder
        return error_response(400, str(exc), param="level", code="invalid_override")
    return JSONResponse(admission.snapshot())


def _first_error(exc: Any) -> str:
    errors = getattr(exc, "errors", lambda: [])()
    if not errors:
        return 'the body must be {"level": int | null, "reason": str, "ttl_seconds": s}'
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
