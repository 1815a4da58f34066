"""The real built-in engine (small cache) behind the real app, served by uvicorn on an
ephemeral loopback port in a background thread, with spans captured in memory."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from inference.api.app import create_app
from inference.backend import Backend
from inference.engine import EngineConfig, build_engine
from inference.settings import Settings
from inferwatch.commands.serve import server_config
from tests.support.waiting import wait_until

MODEL = "inferwatch-tiny"


def small_engine(**overrides: object) -> Backend:
    """The random tiny model with a small KV cache: fast to build, cheap on 2 cores."""
    config = {
        "model": "tiny",
        "num_kv_blocks": 256,
        "max_num_seqs": 16,
        "max_waiting": 64,
        "seed": 0,
    }
    config.update(overrides)
    return build_engine(EngineConfig(**config))  # type: ignore[arg-type]


@dataclass
class RunningService:
    app: FastAPI
    backend: Backend
    spans: InMemorySpanExporter
    base_url: str

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    def async_client(self, timeout: float = 30.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    def server_spans(self, count: int, timeout: float = 30.0) -> list[ReadableSpan]:
        """The SERVER spans once `count` have ended. A client has the last byte of an answer
        slightly before its server span ends, so reading spans right away races."""

        def ended() -> list[ReadableSpan]:
            return [s for s in self.spans.get_finished_spans() if s.kind == SpanKind.SERVER]

        assert wait_until(lambda: len(ended()) >= count, timeout), (
            f"{count} server spans never ended"
        )
        return ended()

    def metrics_text(self) -> str:
        with self.client() as c:
            response = c.get("/metrics")
        response.raise_for_status()
        return response.text


class ServerThread:
    """uvicorn.Server in a thread, configured as `inferwatch serve` configures it; port 0 lets
    the OS pick a free port."""

    def __init__(self, app: FastAPI) -> None:
        config = server_config(app, app.state.settings, port=0)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve(
    backend: Backend | None = None, settings: Settings | None = None
) -> tuple[ServerThread, FastAPI, Backend, InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    backend = backend if backend is not None else small_engine()
    app = create_app(settings or Settings(), backend=backend, tracer_provider=provider)
    return ServerThread(app), app, backend, spans
