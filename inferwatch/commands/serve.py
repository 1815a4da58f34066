"""`inferwatch serve`: the OpenAI-compatible service on uvicorn (one process, one worker).

One process on purpose: the engine owns the accelerator, and prometheus-client's multiprocess
mode supports neither custom collectors nor exemplars. Every flag can also come from
INFERWATCH_<NAME> (e.g. INFERWATCH_PORT); a flag given on the command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from types import FrameType
from typing import Any

import uvicorn

from inference.api.drain import Drain
from inference.api.http_protocol import JsonErrorH11Protocol
from inference.settings import Settings, option_fields
from inferwatch.commands.options import add_options, given

log = logging.getLogger("inferwatch.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, option_fields())


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings.resolve(given(args, option_fields()))


def run(args: argparse.Namespace) -> int:
    from inference.api.app import build_app
    from inference.service import build_service
    from inference.telemetry.logs import configure_logging

    try:
        settings = settings_from_args(args)
        configure_logging(settings.log_level)
        app = build_app(build_service(settings))
    except (ValueError, OSError) as exc:  # bad setting, missing checkpoint, no CUDA device
        print(f"inferwatch serve: {exc}", file=sys.stderr)
        return 2
    log.info(
        "serving",
        extra={
            "fields": {
                "host": settings.host,
                "port": settings.port,
                "model": app.state.backend.model_name,
            }
        },
    )
    config = server_config(app, settings)
    freeze_startup_heap()
    DrainingServer(config, app.state.generation.drain, settings.shutdown_grace_seconds).run()
    return 0


def freeze_startup_heap() -> None:
    """Move what start-up built (torch, the model, the tokenizer, the app: a few hundred
    thousand objects that live as long as the process) out of the collector's reach. Without
    this every full collection walks all of them: 90-140 ms with the GIL held, several times a
    minute under load, and every request in flight stalls for it (a premium request's p99 time
    to first token included)."""
    gc.collect()
    gc.freeze()


def server_config(app: Any, settings: Settings, port: int | None = None) -> uvicorn.Config:
    """The uvicorn configuration of the service (tests use it too, with port 0)."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port if port is None else port,
        workers=1,
        log_config=None,
        access_log=False,
        # The drain already waited for requests; this only bounds closing idle connections.
        timeout_graceful_shutdown=2,
        http=JsonErrorH11Protocol,
        # X-Forwarded-For and friends only from the proxies named; by default from nobody.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
    )


class DrainingServer(uvicorn.Server):
    """uvicorn, with SIGTERM handled as Kubernetes expects: keep listening while draining
    (inference/api/drain.py), then exit 0. SIGINT, or a second SIGTERM, stops at once."""

    def __init__(self, config: uvicorn.Config, drain: Drain, grace_seconds: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._grace = grace_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        await super().main_loop()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and not self._draining and self._loop is not None:
            self._draining = True
            # Not recorded as a captured signal: uvicorn would re-raise it at exit (code 143).
            self._loop.call_soon_threadsafe(self._loop.create_task, self._drain_then_exit())
            return
        super().handle_exit(sig, frame)

    async def _drain_then_exit(self) -> None:
        try:
            cut = await self._drain.run(self._grace)
            log.info("drained", extra={"fields": {"cut": cut}})
        finally:
            self.should_exit = True
