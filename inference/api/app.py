"""The FastAPI app around a built `Service` (inference/service.py wires the parts).

Routes, error handlers, the request-id middleware and the HTTP server span are HTTP concerns,
so they live here; the app's lifespan starts and stops the service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider

from exporters.collector import MetricSource
from inference.api import admin, ops, routes
from inference.api.errors import install_error_handlers
from inference.api.generation import GenerationService
from inference.api.limits import RequestLimitsMiddleware
from inference.api.openapi import install_openapi
from inference.api.request_id import RequestIdMiddleware
from inference.api.response_metrics import ResponseCountingMiddleware
from inference.backend import Backend
from inference.service import Service, build_service
from inference.settings import Settings
from inference.telemetry.server_span import pass_middle_chunks_through
from inference.telemetry.tracing import prefer_stable_http_semconv

UNTRACED_URLS = "/metrics,/health,/ready"


def build_app(service: Service) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="inferwatch", version=service.version, lifespan=lifespan)
    app.state.service = service
    app.state.settings = service.settings
    app.state.backend = service.backend
    app.state.registry = service.registry
    keys = service.admission.keys if service.admission is not None else None
    app.state.generation = GenerationService(service.backend, service.recorder, keys=keys)
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(routes.router)
    app.include_router(ops.router)
    app.include_router(admin.router)
    app.add_middleware(RequestIdMiddleware)
    settings = service.settings
    app.add_middleware(
        RequestLimitsMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
        read_timeout=settings.read_timeout,
    )
    if service.metrics is not None:  # outermost of ours: it sees the limits' answers too
        app.add_middleware(
            ResponseCountingMiddleware,
            metrics=service.metrics,
            templates=lambda: app.openapi()["paths"],
        )
    if service.tracer_provider is not None:
        prefer_stable_http_semconv()
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=service.tracer_provider,
            # HTTP metrics are ours (Prometheus); the instrumentation's own would be dead weight.
            meter_provider=NoOpMeterProvider(),
            excluded_urls=UNTRACED_URLS,
            exclude_spans=["receive", "send"],
        )
        pass_middle_chunks_through(app)
    return app


def create_app(
    settings: Settings | None = None,
    backend: Backend | None = None,
    tracer_provider: TracerProvider | None = None,
    *,
    metric_sources: Sequence[MetricSource] | None = None,
) -> FastAPI:
    """`build_service` then `build_app`: the service app in one call (tests, benchmarks)."""
    service = build_service(settings, backend, tracer_provider, metric_sources=metric_sources)
    return build_app(service)
