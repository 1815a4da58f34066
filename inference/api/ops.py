"""Operational endpoints: liveness, readiness and the Prometheus scrape."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from inference.backend import Backend

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers HTTP."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """Readiness: the model is loaded and the engine loop is alive."""
    backend: Backend = request.app.state.backend
    if request.app.state.generation.drain.draining:
        return JSONResponse({"status": "draining", "model": backend.model_name}, status_code=503)
    if backend.ready():
        return JSONResponse({"status": "ready", "model": backend.model_name})
    return JSONResponse({"status": "not ready", "model": backend.model_name}, status_code=503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """OpenMetrics (with exemplars) when the scraper asks for it, classic text otherwise."""
    registry: CollectorRegistry = request.app.state.registry
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    backend: Backend = request.app.state.backend
    await backend.refresh_stats()  # figures read elsewhere (an upstream's) as of this scrape
    # Off the event loop: a collector (NVML) may block for a moment.
    body = await anyio.to_thread.run_sync(encoder, registry)
    return Response(body, media_type=content_type)
