"""The app factory: wires a backend, a per-app metric registry and tracing into FastAPI.

Everything is per app (registry, tracer provider, instrumentation), so tests and benchmarks can
build several apps in one process without sharing global state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, ProcessCollector

from exporters.collector import CollectorGroup, MetricSource
from inference.api import ops, routes
from inference.api.errors import install_error_handlers
from inference.api.generation import GenerationService
from inference.api.request_id import RequestIdMiddleware
from inference.backend import Backend
from inference.settings import Settings
from inference.telemetry.engine_state import QueueSource
from inference.telemetry.metrics import ServiceMetrics
from inference.telemetry.recorder import RequestRecorder
from inference.telemetry.server_span import pass_middle_chunks_through
from inference.telemetry.tracing import build_tracer_provider, prefer_stable_http_semconv

UNTRACED_URLS = "/metrics,/health,/ready"


def package_version() -> str:
    try:
        return version("inferwatch")
    except PackageNotFoundError:
        return "0.0.0"


def build_builtin_backend(settings: Settings) -> Backend:
    """The built-in engine, configured from settings (not started: the lifespan starts it)."""
    from inference.engine import EngineConfig, build_engine

    config = EngineConfig(
        model_path=settings.model_path,
        device=settings.device,
        dtype=settings.dtype,
        num_kv_blocks=settings.num_kv_blocks,
        max_num_seqs=settings.max_num_seqs,
        max_waiting=settings.max_waiting,
        model_name=settings.model_name,
        seed=settings.seed,
    )
    return build_engine(config)


def default_sources() -> list[MetricSource]:
    """Host always; GPU where NVML finds a device."""
    from exporters.gpu import GpuSource, nvml_available
    from exporters.host import HostSource

    sources: list[MetricSource] = [HostSource()]
    if nvml_available():
        sources.append(GpuSource())
    return sources


def create_app(
    settings: Settings | None = None,
    backend: Backend | None = None,
    tracer_provider: TracerProvider | None = None,
    *,
    metric_sources: Sequence[MetricSource] | None = None,
) -> FastAPI:
    """The service app. The app starts the backend on startup and stops it on shutdown.

    `metric_sources` replaces the default host/GPU sources (the queue source is always there);
    `tracer_provider` replaces the one built from the OTEL_* environment.
    """
    settings = settings or Settings()
    backend = backend if backend is not None else build_builtin_backend(settings)
    app_version = package_version()

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    extra = list(metric_sources) if metric_sources is not None else default_sources()
    sources: list[MetricSource] = [QueueSource(backend), *extra]
    registry.register(CollectorGroup(sources))

    metrics: ServiceMetrics | None = None
    provider: TracerProvider | None = None
    owns_provider = False
    if settings.telemetry:
        metrics = ServiceMetrics(
            registry,
            backend.model_name,
            version=app_version,
            backend=backend.backend_name,
            device=str(getattr(backend, "device", settings.device)),
            concurrency_limit=settings.max_in_flight,
        )
        backend.add_step_listener(metrics.observe_step)
        owns_provider = tracer_provider is None
        provider = tracer_provider or build_tracer_provider(app_version)
    tracer = provider.get_tracer("inferwatch.api", app_version) if provider else None
    recorder = RequestRecorder(metrics, tracer, log_prompts=settings.log_prompts)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await backend.start()
        try:
            yield
        finally:
            await backend.stop()
            for source in sources:
                close = getattr(source, "close", None)
                if callable(close):
                    close()
            if owns_provider and provider is not None:
                provider.shutdown()

    app = FastAPI(title="inferwatch", version=app_version, lifespan=lifespan)
    app.state.settings = settings
    app.state.backend = backend
    app.state.registry = registry
    app.state.generation = GenerationService(backend, recorder)
    install_error_handlers(app)
    app.include_router(routes.router)
    app.include_router(ops.router)
    app.add_middleware(RequestIdMiddleware)
    if provider is not None:
        prefer_stable_http_semconv()
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=provider,
            # HTTP metrics are ours (Prometheus); the instrumentation's own would be dead weight.
            meter_provider=NoOpMeterProvider(),
            excluded_urls=UNTRACED_URLS,
            exclude_spans=["receive", "send"],
        )
        pass_middle_chunks_through(app)
    return app
