"""Every HTTP answer counted as the client saw it (`inferwatch_http_responses_total`): 4xx,
refusals before the engine, limits enforced before the app, and streams whose error arrived
in-band after a 200. The availability SLO is built on this, so an error the engine never saw
still spends error budget.

The route label is the matched route's template from the app's own route table, any other path
is `other`; the reason is what the handler that answered wrote into the request state
(`note_reason`), else derived from the status. No label value comes from the client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inference.telemetry.catalog import OTHER_ROUTE, RESPONSE_REASONS
from inference.telemetry.metrics import ServiceMetrics

STATE_KEY = "inferwatch_reason"
_BY_STATUS = {
    404: "not_found",
    405: "method_not_allowed",
    401: "unauthorized",
    499: "client_closed",
}


def note_reason(state: Any, reason: str) -> None:
    """Called by whatever answers (error handlers, limits, a stream that fails in-band)."""
    if reason not in RESPONSE_REASONS:
        raise ValueError(f"{reason!r} is not in RESPONSE_REASONS")
    if isinstance(state, dict):
        state[STATE_KEY] = reason
    else:
        setattr(state, STATE_KEY, reason)


def _noted(scope: Scope) -> str | None:
    state = scope.get("state") or {}
    return state.get(STATE_KEY) if isinstance(state, dict) else getattr(state, STATE_KEY, None)


def status_class(status: int) -> str:
    return f"{min(max(status // 100, 2), 5)}xx"


def reason_for(status: int) -> str:
    if status < 400:
        return "ok"
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return "internal" if status >= 500 else "http_error"


class ResponseCountingMiddleware:
    def __init__(
        self, app: ASGIApp, metrics: ServiceMetrics, templates: Callable[[], Iterable[str]]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self._templates_of = templates
        self._templates: frozenset[str] | None = None

    @property
    def templates(self) -> frozenset[str]:
        """The app's route templates, read once the app is complete (first request)."""
        if self._templates is None:
            self._templates = frozenset(self._templates_of())
            self.metrics.known_routes(sorted(self._templates))
        return self._templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        _ = self.templates
        status = 0

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self._count(scope, status)

    def _count(self, scope: Scope, status: int) -> None:
        # Before routing (limits) there is no matched route: the API's paths have no parameters,
        # so the path itself is its template when it is one.
        route = getattr(scope.get("route"), "path", None) or scope.get("path", "")
        if route not in self.templates:
            route = OTHER_ROUTE
        noted = _noted(scope)
        if status == 0:  # nothing was sent: the client left first, or the app died
            status = 499 if noted in (None, "client_closed") else 500
        reason = noted or reason_for(status)
        # A stream that said 200 and then failed in-band is a failure the user saw.
        cls = "5xx" if status < 400 and reason != "ok" else status_class(status)
        self.metrics.record_response(route, cls, reason)
