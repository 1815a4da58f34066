"""The server span's ASGI middleware, made cheap for streamed bodies.

opentelemetry-instrumentation-asgi wraps `send` so the server span learns the status code (from
`http.response.start`) and ends with the last body message. It runs that wrapper for every
message, including each of the dozens of SSE chunks a streamed completion sends, although a
middle chunk carries nothing the span needs: no headers, no status, not the end. With send spans
excluded (as the app does), middle chunks go straight to the inner `send`; the first message and
the last still pass through the instrumentation, so the span is exactly what it would have been.

If a future instrumentation release renames its hook, the middleware is left as it is: slower,
never wrong (a test pins that the shortcut is in place with the versions installed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from starlette.types import ASGIApp, Message, Send

SEND_HOOK = "_get_otel_send"
_MARK = "_inferwatch_streaming_pass_through"


def pass_middle_chunks_through(app: FastAPI) -> None:
    """Call after `FastAPIInstrumentor.instrument_app(app, exclude_spans=[..., "send"])`."""
    build = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        stack = build()
        for layer in middleware_layers(stack):
            if isinstance(layer, OpenTelemetryMiddleware):
                _install(layer)
        return stack

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]


def is_installed(middleware: OpenTelemetryMiddleware) -> bool:
    return getattr(middleware, _MARK, False)


def middleware_layers(stack: ASGIApp) -> list[Any]:
    """The built stack, outermost first, following each layer's `app` (cycle-safe)."""
    layers: list[Any] = []
    layer: Any = stack
    while layer is not None and all(layer is not seen for seen in layers):
        layers.append(layer)
        layer = getattr(layer, "app", None)
    return layers


def _install(middleware: OpenTelemetryMiddleware) -> None:
    get_send: Callable[..., Send] | None = getattr(middleware, SEND_HOOK, None)
    if get_send is None or not getattr(middleware, "exclude_send_span", False):
        return  # unknown release, or send spans wanted: every message must reach it

    def get_lean_send(
        server_span: Any, server_span_name: str, scope: Any, send: Send, duration_attrs: Any
    ) -> Send:
        otel_send = get_send(server_span, server_span_name, scope, send, duration_attrs)

        async def lean_send(message: Message) -> None:
            # Inline test, not a helper call: this runs once per streamed chunk.
            if message.get("more_body") and message["type"] == "http.response.body":
                await send(message)
            else:
                await otel_send(message)

        return lean_send

    setattr(middleware, SEND_HOOK, get_lean_send)
    setattr(middleware, _MARK, True)
