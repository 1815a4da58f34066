"""OpenAI-style error objects, and the mapping from our exceptions to HTTP statuses.

Clients (the `openai` package included) parse `{"error": {"message", "type", "param", "code"}}`
and turn the status into a typed exception, so every failure path answers in that shape.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inference.api.response_metrics import note_reason, reason_for
from inference.backend import EngineError, InvalidRequestError, RejectedError

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1
CLIENT_CLOSED_REQUEST = 499  # nginx's code; nobody reads it, the logs and metrics do


class ParamError(InvalidRequestError):
    """An invalid request that names the offending parameter (the error object's `param`)."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class ClientGone(Exception):
    """The HTTP client disconnected before the answer was complete."""


class ModelNotFoundError(Exception):
    def __init__(self, model: str, served: str) -> None:
        super().__init__(f"the model {model!r} does not exist; this server serves {served!r}")


class GenerationFailedError(Exception):
    """The engine failed this request (not the client's fault): HTTP 500."""


class ServerShutdownError(Exception):
    """The server cut this accepted request at the end of its shutdown grace period: 503."""


def error_response(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def error_sse_payload(message: str) -> dict[str, dict[str, str | None]]:
    """The error object sent as a last event when a stream fails after its headers went out."""
    return {"error": {"message": message, "type": "server_error", "param": None, "code": None}}


def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":  # its location is a byte offset, not a parameter
        where = first.get("loc", ("body", "?"))[-1]
        reason = (first.get("ctx") or {}).get("error", "invalid JSON")
        return error_response(400, f"the request body is not valid JSON ({reason} at {where})")
    # A union reports each member's failure; our own check ("value_error") says most.
    first = next((e for e in errors if e.get("type") == "value_error"), first)
    # pydantic adds union-member tags ("str", "list[str]") to the location; clients want fields.
    loc = [str(p) for p in first.get("loc", ()) if p != "body" and not _is_type_tag(p)]
    param = loc[0] if loc else None
    where = ".".join(loc)
    msg = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    message = f"{where}: {msg}" if where else msg
    return error_response(400, message or "invalid request body", param=param)


def _is_type_tag(part: object) -> bool:
    return isinstance(part, str) and (part in _TYPE_TAGS or "[" in part or "-" in part)


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def _invalid(_: Request, exc: Exception) -> JSONResponse:
    param, code = getattr(exc, "param", None), getattr(exc, "code", None)
    return error_response(400, str(exc), param=param, code=code)


def retry_headers(seconds: float) -> dict[str, str]:
    """The same wait twice: `Retry-After` in whole seconds (RFC 9110) and `retry-after-ms`,
    which the official openai client reads first. The seconds are derived from the
    milliseconds, so the two always agree (from the float itself, 1.0004 s gave `2` and
    `1000`)."""
    ms = max(1, math.ceil(seconds * 1000))
    return {"Retry-After": str(max(1, -(-ms // 1000))), "retry-after-ms": str(ms)}


def _rejected(_: Request, exc: Exception) -> JSONResponse:
    """Every refusal: its status, its reason as the error code, and either when to retry or
    that retrying as sent cannot help (`x-should-retry: false`, obeyed by the openai client)."""
    assert isinstance(exc, RejectedError)
    if exc.retry_after is not None:
        headers = retry_headers(exc.retry_after)
    else:
        headers = {"x-should-retry": "false"}
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if exc.status < 500:
        param = "prompt" if exc.reason == "prompt_too_long" else None
        return error_response(exc.status, str(exc), param=param, code=exc.code, headers=headers)
    return error_response(
        exc.status,
        f"the server is busy ({exc}); retry later",
        type_="server_busy",
        code=exc.code or exc.reason,
        headers=headers,
    )


def _engine_unavailable(_: Request, exc: Exception) -> JSONResponse:
    return error_response(
        503,
        f"the engine cannot take requests: {exc}",
        type_="server_error",
        code="engine_unavailable",
        headers=retry_headers(RETRY_AFTER_SECONDS),
    )


def _model_not_found(_: Request, exc: Exception) -> JSONResponse:
    return error_response(404, str(exc), param="model", code="model_not_found")


def _generation_failed(_: Request, exc: Exception) -> JSONResponse:
    return error_response(500, str(exc), type_="server_error")


def _shutdown(_: Request, exc: Exception) -> JSONResponse:
    headers = retry_headers(RETRY_AFTER_SECONDS)
    return error_response(
        503, str(exc), type_="server_error", code="shutting_down", headers=headers
    )


def _client_gone(_: Request, exc: Exception) -> Response:
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return error_response(
        exc.status_code, str(exc.detail), type_="invalid_request_error", headers=exc.headers
    )


class UnexpectedErrorMiddleware:
    """The last resort for an exception no handler knows: a 500 error object, and the
    connection stays usable. Starlette's own last resort answers and then re-raises, and uvicorn
    then drops the keep-alive connection without `Connection: close`, so a client's next request
    on it got no answer. Once a response has started there is nothing protocol-correct left to
    send, so the exception goes on (the server closes the connection)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.error("unhandled error", exc_info=exc)
            note_reason(scope.setdefault("state", {}), "internal")
            if started:
                raise
            response = error_response(500, "internal server error", type_="server_error")
            await response(scope, receive, send)


Handler = Callable[[Request, Exception], Response]

# exception type -> (its handler, the reason it is counted under in inferwatch_http_responses_total)
HANDLERS: dict[type[Exception], tuple[Handler, Callable[[Exception], str]]] = {
    RequestValidationError: (_validation, lambda _: "invalid_request"),
    RejectedError: (_rejected, lambda exc: getattr(exc, "reason", "http_error")),
    InvalidRequestError: (_invalid, lambda _: "invalid_request"),
    EngineError: (_engine_unavailable, lambda _: "engine_unavailable"),
    ModelNotFoundError: (_model_not_found, lambda _: "model_not_found"),
    GenerationFailedError: (_generation_failed, lambda _: "generation_failed"),
    ServerShutdownError: (_shutdown, lambda _: "shutdown"),
    ClientGone: (_client_gone, lambda _: "client_closed"),
    HTTPException: (_http, lambda exc: reason_for(getattr(exc, "status_code", 500))),
}


def _noting(
    handler: Handler, reason_of: Callable[[Exception], str]
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """Async though it awaits nothing: Starlette runs a plain `def` exception handler in its
    thread pool, a thread hop for every refusal, and under overload most answers are
    refusals."""

    async def handle(request: Request, exc: Exception) -> Response:
        note_reason(request.state, reason_of(exc))
        return handler(request, exc)

    return handle


def install_error_handlers(app: FastAPI) -> None:
    for exc_type, (handler, reason_of) in HANDLERS.items():
        app.add_exception_handler(exc_type, _noting(handler, reason_of))
    # Innermost of the app's middleware: the server span and x-request-id still see the 500.
    app.add_middleware(UnexpectedErrorMiddleware)
