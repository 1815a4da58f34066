"""The composition root: the one place that wires the parts of a running service together.

`build_service(settings)` makes the backend, the per-service metric registry and its sources,
the metric families, the tracer and the request recorder; `Service.start()`/`stop()` own their
lifetimes. Everything is per service (no global registry or tracer provider), so tests and
benchmarks can build several in one process. HTTP is `inference.api.app`'s business.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry, ProcessCollector

from exporters.collector import CollectorGroup, MetricSource
from inference.admission.assembly import Admission, build_admission, kv_tokens
from inference.admission.controller import Transition
from inference.backend import Backend, Priority, Tokenizer
from inference.engine.config import EngineConfig
from inference.settings import Settings
from inference.telemetry.engine_state import QueueSource
from inference.telemetry.metrics import ServiceMetrics
from inference.telemetry.recorder import RequestRecorder
from inference.telemetry.tracing import build_tracer_provider


def package_version() -> str:
    try:
        return version("inferwatch")
    except PackageNotFoundError:
        return "0.0.0"


@dataclass
class Service:
    """A built service, not yet started."""

    settings: Settings
    backend: Backend
    registry: CollectorRegistry
    sources: list[MetricSource]
    recorder: RequestRecorder
    version: str
    metrics: ServiceMetrics | None = None
    tracer_provider: TracerProvider | None = None
    tracer: Tracer | None = None
    owns_tracer_provider: bool = False
    admission: Admission | None = None

    async def start(self) -> None:
        await self.backend.start()
        if self.admission is not None:
            self.admission.start()

    async def stop(self) -> None:
        """Backend first (it fails what is still in flight), then what only scrapes and traces."""
        if self.admission is not None:
            self.admission.stop()
        await self.backend.stop()
        for source in self.sources:
            close = getattr(source, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()
        if self.owns_tracer_provider and self.tracer_provider is not None:
            _bounded(self.tracer_provider.shutdown, self.settings.span_flush_seconds)


def build_backend(settings: Settings) -> Backend:
    """The built-in engine from settings, or with `--upstream` the upstreams behind the same
    contract (not started: `Service.start()` starts it)."""
    if settings.upstreams.upstream:
        return build_upstream_backend(settings)
    from inference.engine import build_engine

    return build_engine(settings.engine)


def build_upstream_backend(settings: Settings) -> Backend:
    """The upstream backend with the tokenizer of the model the upstreams serve: read from
    the same files (`--model-path` folder or .gguf, or a built-in model), so the ids sent are
    the ids the upstream would have made of the same text. The served name and context window
    come from the upstream's /v1/models unless given (`--upstream-model`, `--max-model-len`)."""
    from inference.upstream import ModelInfo, UpstreamBackend, discover_model

    config = settings.upstreams
    tokenizer = load_tokenizer(settings.engine)
    given_len = settings.engine.max_model_len
    if config.upstream_model is not None and given_len is not None:
        model = ModelInfo(config.upstream_model, given_len)
    else:
        found = discover_model(config.upstream, config.upstream_connect_timeout)
        model = ModelInfo(config.upstream_model or found.name, given_len or found.max_model_len)
    return UpstreamBackend(config, tokenizer, model)


def load_tokenizer(engine: EngineConfig) -> Tokenizer:
    """Only the tokenizer (and chat template) of the model `engine` names: no weights."""
    from pathlib import Path

    from inference.engine.chat_template import template_file
    from inference.engine.gguf_checkpoint import GGUFFile
    from inference.engine.gguf_tokenizer import gguf_tokenizer
    from inference.engine.hf_checkpoint import read_tokenizer
    from inference.engine.models import BUILTIN_MODELS, TINY
    from inference.engine.tokenizer import ByteTokenizer

    engine.check_combination()
    template = template_file(Path(engine.chat_template)) if engine.chat_template else None
    if engine.builtin_model == TINY:
        return ByteTokenizer()
    if engine.builtin_model:
        path = BUILTIN_MODELS[engine.builtin_model].gguf_path()
    else:
        path = Path(str(engine.model_path))
    if path.is_file():
        return gguf_tokenizer(GGUFFile(path), template)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such .gguf file or checkpoint folder")
    return read_tokenizer(path, template)


def default_sources() -> list[MetricSource]:
    """Host always; GPU where NVML finds a device."""
    from exporters.gpu import GpuSource, nvml_available
    from exporters.host import HostSource

    sources: list[MetricSource] = [HostSource()]
    if nvml_available():
        sources.append(GpuSource())
    return sources


def build_service(
    settings: Settings | None = None,
    backend: Backend | None = None,
    tracer_provider: TracerProvider | None = None,
    *,
    metric_sources: Sequence[MetricSource] | None = None,
) -> Service:
    """`metric_sources` replaces the default host/GPU sources (the queue source is always
    there); `tracer_provider` replaces the one built from the OTEL_* environment."""
    settings = settings or Settings()
    backend = backend if backend is not None else build_backend(settings)
    app_version = package_version()

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    extra = list(metric_sources) if metric_sources is not None else default_sources()
    sources: list[MetricSource] = [QueueSource(backend), *extra]
    registry.register(CollectorGroup(sources))
    # Admission wraps the backend (the gate is itself a Backend) and samples this registry.
    admission = build_admission(settings.admission, backend, registry)
    engine_capacity = kv_tokens(backend) or 0
    backend = admission.backend

    metrics: ServiceMetrics | None = None
    provider: TracerProvider | None = None
    if settings.telemetry:
        metrics = ServiceMetrics(
            registry,
            backend.model_name,
            version=app_version,
            backend=backend.backend_name,
            device=str(getattr(backend, "device", settings.engine.device)),
            concurrency_limit=engine_capacity,
        )
        backend.add_step_listener(metrics.observe_step)
        _wire_admission_metrics(metrics, admission)
        provider = tracer_provider or build_tracer_provider(app_version)
    tracer = provider.get_tracer("inferwatch.api", app_version) if provider else None
    return Service(
        settings=settings,
        backend=backend,
        registry=registry,
        sources=sources,
        recorder=RequestRecorder(metrics, tracer, log_prompts=settings.log_prompts),
        version=app_version,
        metrics=metrics,
        tracer_provider=provider,
        tracer=tracer,
        owns_tracer_provider=provider is not None and tracer_provider is None,
        admission=admission,
    )


def _wire_admission_metrics(metrics: ServiceMetrics, admission: Admission) -> None:
    """The level and the per-priority limits read live at scrape time; one count per
    transition, by direction and trigger."""
    model = metrics.model
    controller, gate = admission.controller, admission.gate
    if controller is not None:
        metrics.degradation_level.labels(model).set_function(lambda: controller.level)

        def count(change: Transition) -> None:
            metrics.degradation_transitions.labels(model, change.direction, change.trigger).inc()

        controller.add_listener(count)
    if gate is not None:
        for priority in Priority:
            child = metrics.concurrency_limit.labels(model, priority.value)
            child.set_function(lambda p=priority: gate.class_limit(p))


def _bounded(work: Callable[[], object], seconds: float) -> None:
    """Run `work` for at most `seconds`: an OTLP collector that is down or never answers would
    otherwise hold the exit for the exporter's timeouts and retries (10-25 s were seen),
    eating Kubernetes' grace period. A daemon thread, so an unfinished flush cannot block exit."""
    thread = threading.Thread(target=work, name="inferwatch-span-flush", daemon=True)
    thread.start()
    thread.join(seconds)
